"""The whole study in one command: the four T-REX steps, the evaluation, a video and `report.md`.

    python -m trex.study -c configs/quickstart.yaml          # `make demo`: a small built-in default
    python -m trex.study -c configs/study/coinrun.yaml        # the reference protocol, for a GPU machine

Each step runs as the very command a user would type (printed, and listed in the report), from a config
file written into `<run_dir>/configs/`. A step whose outputs exist is skipped; an interrupted step resumes exactly
(PPO from its newest checkpoint and env state, demos from their last finished round, a reward model from the start
with the same seeds), so a study killed at any moment and rerun ends as an uninterrupted one. The report shows what
was measured.
"""

from __future__ import annotations

from pathlib import Path

from toolkit.cli import run_main
from toolkit.config import parse_config
from toolkit.files import exclusive
from trex.pipeline.study_layout import StudyConfig
from trex.pipeline.study_plan import run_study


def main(argv: list[str]) -> Path:
    cfg = parse_config(StudyConfig, argv, prog="python -m trex.study", description=__doc__.splitlines()[0])
    cfg.setup()
    with exclusive(cfg.run_dir):
        return run_study(cfg)


if __name__ == "__main__":
    run_main(main)
