"""Where the local cloud listens: one port per service and per function, from a base port or free ones.

``LOCAL_CLOUD_BASE_PORT`` (8780) and the per-service overrides (``Ports.from_env``);
``Ports.free`` for tests that run beside other clouds. The functions' ports
follow in topology order: the event functions', then the HTTP ones'.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from infra.local.processes import HOST
from infra.local.topology import Topology

# Port layout from the base port; the Compute/Vertex ports match the examples in
# docs/architecture.md (8791, 8792).
DEFAULT_BASE_PORT = 8780
_OFFSETS = {"pubsub": 0, "gcs": 1, "firestore": 2, "compute": 11, "vertex": 12, "relay": 13, "functions": 20}


@dataclass(frozen=True)
class Ports:
    """Every port the local cloud listens on; ``functions`` maps function name -> port (HTTP functions too)."""

    pubsub: int
    gcs: int
    firestore: int
    compute: int
    vertex: int
    functions: dict[str, int]
    relay: int = 0  # the push relay (0: pick a free one at start)

    @classmethod
    def from_env(cls, topology: Topology, environ: Mapping[str, str] = os.environ) -> Ports:
        """Ports from ``LOCAL_CLOUD_BASE_PORT`` (8780) and the per-service overrides.

        ``LOCAL_CLOUD_PUBSUB_PORT`` (base), ``LOCAL_CLOUD_GCS_PORT`` (base+1),
        ``LOCAL_CLOUD_FIRESTORE_PORT`` (base+2), ``LOCAL_CLOUD_COMPUTE_PORT``
        (base+11), ``LOCAL_CLOUD_VERTEX_PORT`` (base+12), ``LOCAL_CLOUD_RELAY_PORT``
        (base+13, the push relay),
        ``LOCAL_CLOUD_FUNCTIONS_PORT`` (base+20: the first function's; the
        others follow in topology order, the HTTP functions after the event ones).
        """
        base = int(environ.get("LOCAL_CLOUD_BASE_PORT") or DEFAULT_BASE_PORT)
        port = {name: int(environ.get(f"LOCAL_CLOUD_{name.upper()}_PORT") or base + offset) for name, offset in _OFFSETS.items()}
        return cls(
            pubsub=port["pubsub"],
            gcs=port["gcs"],
            firestore=port["firestore"],
            compute=port["compute"],
            vertex=port["vertex"],
            functions={name: port["functions"] + i for i, name in enumerate(topology.function_names)},
            relay=port["relay"],
        )

    @classmethod
    def free(cls, topology: Topology) -> Ports:
        """Ports nothing listens on right now (for tests that run beside other clouds)."""
        services = ("pubsub", "gcs", "firestore", "compute", "vertex", "relay")
        sockets = [socket.socket() for _ in range(len(services) + len(topology.function_names))]
        try:
            for sock in sockets:  # all bound at once, so no two are the same
                sock.bind((HOST, 0))
            numbers = [sock.getsockname()[1] for sock in sockets]
        finally:
            for sock in sockets:
                sock.close()
        functions = {name: numbers[len(services) + i] for i, name in enumerate(topology.function_names)}
        return cls(**dict(zip(services, numbers[: len(services)], strict=True)), functions=functions)

    def named(self) -> dict[str, int]:
        """Process name -> port, for every port (the names of ``LocalCloud.processes``)."""
        return {
            "pubsub": self.pubsub,
            "gcs": self.gcs,
            "firestore": self.firestore,
            "compute": self.compute,
            "vertex": self.vertex,
            "relay": self.relay,
            **{function_process(name): port for name, port in self.functions.items()},
        }


def function_process(function_name: str) -> str:
    """The process (and log file) name of a function (its supervisor's, in fact)."""
    return f"fn-{function_name}"


def function_pid_file(state_dir: Path, function_name: str) -> Path:
    """Where the function's supervisor keeps the pid of its functions-framework process."""
    return Path(state_dir) / "run" / function_process(function_name) / "child.pid"


def topic_path(project: str, topic: str) -> str:
    """The path a push goes to: functions-framework builds the messagePublished CloudEvent's source from it."""
    return f"/projects/{project}/topics/{topic}"
