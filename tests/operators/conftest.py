"""One local cloud for the operators' tests (``avmonitor``, ``/status``): started once, stopped at the end.

General fixtures only (others append theirs): ``cloud``, the running local
cloud, whose client environment (``cloud.env``: emulator hosts, ``STATUS_URL``,
``AVMONITOR_TOKEN``...) is also this process's, as for the main app or an
operator's shell; ``outcomes``, what the main app hears on render-completed and
render-failed. The settings are the end-to-end tests' fast ones
(tests/e2e/conftest.py): seconds instead of the cloud's minutes. ``new_cloud``
makes another, not started, for a test module that needs a cloud of its own
(the session's ``cloud`` is made by it).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pytest

from infra.local.cloud import LocalCloud, Ports
from infra.local.testkit import FAST_SETTINGS, Outcomes, client_of
from infra.local.topology import load_topology

PROJECT = "fast-render-operators"



@pytest.fixture(scope="session")
def new_cloud(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., LocalCloud]:
    """Makes a local cloud, not started yet: ``new_cloud(project, dir_name, **settings)``, on free
    ports, with a state dir of its own; a test skips where the local cloud cannot run."""

    def make(project: str, dir_name: str, **settings: Any) -> LocalCloud:
        if sys.platform != "linux":  # pragma: no cover
            pytest.skip("the local cloud runs on Linux")
        return LocalCloud(project=project, ports=Ports.free(load_topology(project)),
                          state_dir=tmp_path_factory.mktemp(dir_name), **settings)

    return make


@pytest.fixture(scope="session")
def cloud(new_cloud: Callable[..., LocalCloud]):
    local = new_cloud(PROJECT, "local-cloud", tick_every_s=2, extra_env=FAST_SETTINGS)
    with local, client_of(local):  # the tests are clients of the local cloud, like the main app
        yield local


@pytest.fixture(scope="session")
def outcomes(cloud: LocalCloud) -> Outcomes:
    return Outcomes(cloud)
