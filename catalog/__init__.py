"""The GPU catalog and selector for the fallback renderer (pure Python, no cloud clients).

Typical use by the fallback launcher:

    from catalog import Block, load_catalog, resolve_video_length, select

    catalog = load_catalog()                      # honours GPU_CATALOG, BASELINE_T4_SPEED_S_PER_S
    decision = select(catalog, resolve_video_length(timeline_length_s),
                      deadline_s=remaining_s, spot=True,
                      blocked=[Block(gpu="l4", location="us-central1-a", reason="stockout")])
    log.info("gpu selected", job_id=job_id, **decision.to_log())
    option = decision.selected                    # None when every option is excluded
"""

from catalog.learned import LearnedSpeeds
from catalog.model import (
    ON_DEMAND,
    SPOT,
    Budget,
    Catalog,
    CatalogError,
    GpuSpec,
    SpotPolicy,
    load_catalog,
    parse_catalog,
    region_of,
    resolve_video_length,
)
from catalog.select import Block, BudgetCheck, Decision, Option, check_daily_budget, format_usd, select

__all__ = [
    "ON_DEMAND",
    "SPOT",
    "Block",
    "Budget",
    "BudgetCheck",
    "Catalog",
    "CatalogError",
    "Decision",
    "GpuSpec",
    "LearnedSpeeds",
    "Option",
    "SpotPolicy",
    "check_daily_budget",
    "format_usd",
    "load_catalog",
    "parse_catalog",
    "region_of",
    "resolve_video_length",
    "select",
]
