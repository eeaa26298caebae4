"""The design note's short catalog: GPU entries at the top level, turned into the full form.

The design note writes its catalog as

    l4:
      cost_per_hour: 0.50
      speed_factor: 1.5
    custom_gpu:
      accelerator: nvidia-tesla-v100
      machine: n1-standard-4
      cost_per_hour: 1.20
      speed_factor: 4.0

A document without ``gpus:`` is this short form: every top-level key that is
not one of the full form's settings (version, baseline_s_per_s,
transfer_overhead_s, budget, spot, vertex) is a GPU entry, so no GPU can be
named after a setting. `to_full` rewrites it as the full form (``gpus:`` with
``machine_type`` and ``zones``) before the full form's own validation runs, so
both forms obey the same rules; errors name the short form's own path
(``l4.cost_per_hour``, no ``gpus.`` prefix).

A short entry needs ``cost_per_hour`` and ``speed_factor``; ``accelerator`` and
``machine`` (the machine type; ``machine_type`` is accepted too) are optional,
and so is every other field of the full form. What it omits is filled in from
the bundled catalog (catalog/gpu_catalog.yml), the one place that knows which
shapes exist where:

- accelerator: the bundled entry of the same name's (t4 -> nvidia-tesla-t4,
  l4 -> nvidia-l4, v100 -> nvidia-tesla-v100, a100 -> nvidia-tesla-a100,
  h100 -> nvidia-h100-80gb); any other name must say its accelerator.
- machine: the machine type the bundled catalog pairs with that accelerator
  (nvidia-tesla-t4 -> n1-standard-4, nvidia-l4 -> g2-standard-8, ...); an
  accelerator the bundled catalog lacks must say its machine.
- zones: the bundled catalog's zones for that accelerator in $REGION (default
  us-central1, as functions/config.py), in its order of preference; none there
  is an error asking for ``zones``.
- boot_overhead_s: the full form's default (model.DEFAULT_BOOT_OVERHEAD_S,
  150 s), not the bundled entry's: the note states no boot time.
- spot_cost_per_hour: none, so the GPU is not offered as Spot: a Spot price
  is not guessed from an on-demand one.
- has_nvenc: the bundled catalog's for that accelerator (T4, L4 and V100 have
  NVENC; A100 and H100 do not); false for one it lacks (the video is then
  planned as encoded on the CPU, the safe side).

- pricing: ``speed_factor``: the note's format is the note's formula
  (``baseline_s_per_s / speed_factor``); ``pricing: model`` in the file, or
  $CATALOG_PRICING, prices it with the runtime model instead.

Each default applied is listed in `Catalog.defaults`, which
``python -m catalog validate`` prints.
"""

from __future__ import annotations

import difflib
from functools import cache
from typing import Any

from catalog import model
from common import strict_yaml

SHORT = "short"
FULL = "full"

# Settings are the full form's top-level fields other than gpus.
SETTINGS = frozenset(model.TOP_FIELDS - {"gpus"})
_REQUIRED = {"cost_per_hour", "speed_factor"}
_OPTIONAL = {"accelerator", "machine"} | (model.GPU_REQUIRED | model.GPU_OPTIONAL) - _REQUIRED


def to_full(data: object, region: str) -> tuple[object, str, list[str]]:
    """(the full-form document, "short" or "full", the defaults applied as one line each).

    A full-form document comes back as it is, once it is known not to mix in
    top-level GPU entries.
    """
    if not isinstance(data, dict):
        return data, FULL, []
    if "gpus" in data:
        _reject_mixed(data)
        return data, FULL, []
    settings = {key: value for key, value in data.items() if key in SETTINGS}
    gpus: dict[Any, Any] = {}
    defaults: list[str] = []
    for name, entry in data.items():
        if name not in SETTINGS:
            _not_a_misspelt_setting(name, entry)
            name = model.gpu_name(name, "")
            gpus[name] = _entry(name, entry, region, defaults)
    if not gpus:
        raise _fail("gpus: required field is missing (or list GPU entries at the top level: the short form)")
    if "pricing" not in settings:  # the note's format carries speed factors: price with them, as the note does
        settings["pricing"] = model.PRICING_SPEED_FACTOR
        defaults.append("pricing: speed_factor (the design note's format: its speed factors price it)")
    return {**settings, "gpus": gpus}, SHORT, defaults


def _entry(name: str, entry: object, region: str, defaults: list[str]) -> dict[str, Any]:
    raw = dict(strict_yaml.fields(entry, name, _REQUIRED, _OPTIONAL, model.catalog_error))
    for key in sorted(_REQUIRED):  # required means a value: null must not fall back to "not sold on-demand"
        model.positive(raw[key], f"{name}.{key}")
    if "machine" in raw and "machine_type" in raw:
        raise _fail(f"{name}.machine_type: the same as machine: give one of them")
    machine_key = "machine" if "machine" in raw else "machine_type"
    bundled = _bundled()

    accelerator = raw.get("accelerator")
    if accelerator is None:
        if name not in bundled.gpus:
            raise _fail(f"{name}.accelerator: required field is missing (only the bundled catalog's GPUs have a "
                        f"default: {', '.join(bundled.gpus)})")
        accelerator = raw["accelerator"] = bundled.gpus[name].accelerator
        defaults.append(f"{name}.accelerator: {accelerator} (the bundled catalog's {name})")
    accelerator = model.matching(accelerator, f"{name}.accelerator", model.ACCELERATOR,
                                 "an accelerator type like nvidia-l4")
    same = [spec for spec in bundled.gpus.values() if spec.accelerator == accelerator]

    if machine_key in raw:
        raw["machine_type"] = model.matching(raw.pop(machine_key), f"{name}.{machine_key}", model.MACHINE_TYPE,
                                             "a machine type like g2-standard-8")
    elif same:
        raw["machine_type"] = same[0].machine_type
        defaults.append(f"{name}.machine: {raw['machine_type']} (the bundled catalog's for {accelerator})")
    else:
        raise _fail(f"{name}.machine: required field is missing (the bundled catalog has no machine type "
                    f"for {accelerator})")

    if "zones" not in raw:
        zones = list(dict.fromkeys(z for spec in same for z in spec.zones if model.region_of(z) == region))
        if not zones:
            raise _fail(f"{name}.zones: required field is missing (the bundled catalog has no {accelerator} "
                        f"zones in region {region!r}, from ${model.ENV_REGION})")
        raw["zones"] = zones
        defaults.append(f"{name}.zones: {', '.join(zones)} (the bundled catalog's for {accelerator} in {region})")

    if "has_nvenc" not in raw:
        raw["has_nvenc"] = bool(same) and same[0].has_nvenc
        known = (f"the bundled catalog's for {accelerator}" if same
                 else f"{accelerator} is not in the bundled catalog: encoded on the CPU")
        defaults.append(f"{name}.has_nvenc: {str(raw['has_nvenc']).lower()} ({known})")
    if "boot_overhead_s" not in raw:
        defaults.append(f"{name}.boot_overhead_s: {model.DEFAULT_BOOT_OVERHEAD_S:g} (the full form's default)")
    if "spot_cost_per_hour" not in raw:
        defaults.append(f"{name}.spot_cost_per_hour: none (not offered as Spot: no price is guessed)")
    return raw


def _not_a_misspelt_setting(name: object, entry: object) -> None:
    """A top-level key that is no GPU entry but looks like a setting gets the full form's "did you mean"."""
    hint = difflib.get_close_matches(str(name), sorted(model.TOP_FIELDS), n=1)  # gpu: is a misspelt gpus:
    looks_like_gpu = isinstance(entry, dict) and bool(_REQUIRED & entry.keys())
    if hint and not looks_like_gpu:
        raise _fail(f"{name}: unknown field (did you mean {hint[0]}?)")
    if not isinstance(entry, dict):
        raise _fail(f"{name}: a GPU entry (short form) must be a mapping with cost_per_hour and speed_factor, "
                    f"got {type(entry).__name__}")


def _reject_mixed(data: dict[Any, Any]) -> None:
    """A file with gpus: whose top level also holds what looks like a GPU entry: say which form is which."""
    for key, value in data.items():
        if key not in model.TOP_FIELDS and isinstance(value, dict) and not difflib.get_close_matches(
                str(key), sorted(model.TOP_FIELDS), n=1):
            raise _fail(f"{key}: unknown field: a file with gpus: lists every GPU under it (GPU entries at "
                        f"the top level are the short form, which has no gpus:)")


@cache
def _bundled() -> model.Catalog:
    """The bundled catalog, where the defaults come from. It must be in the full form (no defaults of its own)."""
    path = model.DEFAULT_CATALOG_PATH
    document = strict_yaml.load(path.read_text(encoding="utf-8"), str(path), model.catalog_error)
    if not isinstance(document, dict) or "gpus" not in document:
        raise _fail(f"{path}: the bundled catalog must be in the full form (gpus:): the short form's defaults "
                    f"come from it")
    return model.parse_catalog(document, source=str(path))


def _fail(message: str) -> model.CatalogError:
    return model.catalog_error(message)
