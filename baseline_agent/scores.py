"""Published Procgen figures (Cobbe et al. 2020), shipped as package data: score ranges and PPO baselines."""

from __future__ import annotations

import csv
from functools import cache
from importlib import resources


@cache
def reference_table() -> dict[str, dict[str, float]]:
    text = resources.files("baseline_agent").joinpath("data/procgen_scores.csv").read_text()
    rows = csv.DictReader(text.splitlines())
    return {row["game"]: {k: float(v) for k, v in row.items() if k != "game"} for row in rows}


def normalized_score(env_name: str, distribution_mode: str, ret: float) -> float | None:
    """(R - R_min) / (R_max - R_min) with the Procgen paper's ranges; None where no range is published."""
    row = reference_table().get(env_name)
    mode = {"easy": "easy", "hard": "hard"}.get(distribution_mode)
    if row is None or mode is None:
        return None
    lo, hi = row[f"{mode}_r_min"], row[f"{mode}_r_max"]
    return (ret - lo) / (hi - lo)
