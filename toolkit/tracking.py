"""Weights & Biases tracking, off by default: the `track` keys of every entry point that logs, and one run's tracker.

A tracked run logs the scalars it writes to TensorBoard (same names, same steps), its resolved config, and the
figures and video of a report. Its wandb files live in its run_dir (`wandb/`), and a resumed run continues the
same wandb run (its id is kept in `wandb_id.txt`). `WANDB_MODE=offline` tracks without a network; `wandb sync`
uploads later.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.cli import require_extra
from toolkit.config import option

TRACKING_KEYS = ("track", "wandb_project", "wandb_entity", "wandb_group")


@dataclass
class TrackingConfig:
    """The keys of where a run is tracked, shared by every entry point that logs (they never change results)."""

    track: bool = option(False, "also log to Weights & Biases (the wandb extra; WANDB_MODE=offline needs no network)")
    wandb_project: str = option("procedural-generalization", "W&B project of a tracked run")
    wandb_entity: str = option("", "W&B team or user ('' = wandb's default)")
    wandb_group: str = option("", "W&B group ('' = none; a study or sweep gives its steps its own name)")


def tracking_keys(cfg: TrackingConfig, group: str) -> dict[str, Any]:
    """The tracking keys a study or sweep passes to its steps: its own, with `group` unless one is set. Refused
    at once without the wandb extra, not in the first step."""
    if cfg.track:
        require_extra("wandb", "config key 'track'", "wandb")
    return {**{k: getattr(cfg, k) for k in TRACKING_KEYS}, "wandb_group": cfg.wandb_group or group}


class Tracker:
    """One wandb run, or nothing when tracking is off: every method is then a no-op."""

    def __init__(self, run: Any = None):
        self.run = run

    def log(self, scalars: dict[str, float], step: int) -> None:
        if self.run is not None and scalars:
            self.run.log(scalars, step=step)

    def log_files(self, images: list[Path], videos: list[Path] | None = None) -> None:
        """PNGs and mp4 videos under their file names (those that exist)."""
        if self.run is None:
            return
        import wandb

        media: dict[str, Any] = {f"images/{p.stem}": wandb.Image(str(p)) for p in images if p.is_file()}
        media.update({f"videos/{p.stem}": wandb.Video(str(p), format="mp4") for p in videos or [] if p.is_file()})
        if media:
            self.run.log(media)

    def log_report(self, report: Path) -> None:
        """The figures and video a markdown report links to, as the report shows them."""
        text = report.read_text()
        links = [report.parent / p for p in re.findall(r"\]\(([^)\s]+\.(?:png|mp4))\)", text)]
        self.log_files([p for p in links if p.suffix == ".png"], [p for p in links if p.suffix == ".mp4"])

    def finish(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()


def start_tracking(
    cfg: TrackingConfig, run_dir: str | Path, config: dict[str, Any], job_type: str, resumable: bool = True
) -> Tracker:
    """A wandb run for `run_dir` when `cfg.track` is on (refused in one line without the wandb extra); `resumable`
    runs continue their wandb run, others (which start their logs anew) get a new one."""
    if not cfg.track:
        return Tracker()
    require_extra("wandb", "config key 'track'", "wandb")
    import wandb

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    id_file = run_dir / "wandb_id.txt"
    run_id = id_file.read_text().strip() if resumable and id_file.is_file() else uuid.uuid4().hex[:8]
    id_file.write_text(run_id + "\n")
    run = wandb.init(
        project=cfg.wandb_project,
        entity=cfg.wandb_entity or None,
        group=cfg.wandb_group or None,
        job_type=job_type,
        name=str(run_dir),
        config=config,
        dir=str(run_dir),
        id=run_id,
        resume="allow",
        settings=wandb.Settings(console="off", silent=True),
    )
    return Tracker(run)
