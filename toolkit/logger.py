"""Run logs: baselines-style `progress.csv`, TensorBoard events, a live progress line and a PNG curve."""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path
from typing import Any

from toolkit.files import atomic_write
from toolkit.tracking import Tracker

STEP_KEY = "misc/total_timesteps"


def read_progress(path: str | Path) -> list[dict[str, str]]:
    """Rows of a progress.csv, dropping a last line cut short by a crash."""
    path = Path(path)
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        width = len(reader.fieldnames or [])
        return [row for row in reader if None not in row.values() and len(row) == width]


class RunLogger:
    """Appends one row per update to progress.csv and TensorBoard (and the same scalars to `tracker`, W&B where
    `track` is on); on resume, rows past the checkpoint go."""

    def __init__(
        self, run_dir: str | Path, resume_step: int | None, enabled: bool = True, tracker: Tracker | None = None
    ):
        self.enabled, self.tracker = enabled, tracker or Tracker()
        self.csv_path = Path(run_dir) / "progress.csv"
        self.fields: list[str] | None = None
        self.writer = None
        if not enabled:
            return
        if resume_step is None:
            self.csv_path.unlink(missing_ok=True)
        else:
            self._truncate(resume_step)
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(Path(run_dir) / "tb"), purge_step=resume_step)

    def _truncate(self, step: int) -> None:
        rows = [r for r in read_progress(self.csv_path) if float(r[STEP_KEY]) <= step]
        if not rows:
            self.csv_path.unlink(missing_ok=True)
            return
        fields = self.fields = list(rows[0])

        def write(tmp: str) -> None:
            with open(tmp, "w", newline="") as f:
                w = csv.DictWriter(f, fields)
                w.writeheader()
                w.writerows(rows)

        atomic_write(self.csv_path, write)

    def log(self, row: dict[str, Any]) -> None:
        if self.writer is None:  # not the process that writes
            return
        if self.fields is None:
            self.fields = list(row)
        new = not self.csv_path.exists()
        with self.csv_path.open("a", newline="") as f:
            w = csv.DictWriter(f, self.fields, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow({k: "" if v is None else v for k, v in row.items()})
        step = int(row[STEP_KEY])
        scalars = {
            key: value
            for key, value in row.items()
            if value is not None and key != STEP_KEY and not (isinstance(value, float) and math.isnan(value))
        }
        for key, value in scalars.items():
            self.writer.add_scalar(key, value, step)
        self.tracker.log(scalars, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.tracker.finish()


def fmt(x: float | None, spec: str = ".2f") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


class ProgressLine:
    """One line per update: steps, SPS, returns and ETA."""

    def __init__(self, total_steps: int, start_step: int):
        self.total, self.start_step, self.t0 = total_steps, start_step, time.time()

    def line(self, step: int, fields: dict[str, float | None]) -> str:
        elapsed = time.time() - self.t0
        sps = (step - self.start_step) / max(elapsed, 1e-9)
        eta = (self.total - step) / sps if sps > 0 else float("nan")
        parts = " ".join(f"{k} {fmt(v)}" for k, v in fields.items())
        return (
            f"step {step:,}/{self.total:,} ({100 * step / self.total:.0f}%) | sps {sps:,.0f} | {parts} | "
            f"eta {fmt_duration(eta)}"
        )


def fmt_interval(x: dict) -> str:
    """A {mean, ci95_low, ci95_high} figure as 'mean [low, high]', the mean alone where there is no interval, '-'
    where there is no mean."""
    if x["ci95_low"] is None:
        return fmt(x["mean"])
    return f"{fmt(x['mean'])} [{fmt(x['ci95_low'])}, {fmt(x['ci95_high'])}]"


def fmt_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "-"
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def plot_curves(csv_path: str | Path, png_path: str | Path, columns: dict[str, str], title: str) -> None:
    """Plot the given progress.csv columns (label by column) against environment steps, as a PNG."""
    from toolkit.figures import figure_row, save_figure

    rows = read_progress(csv_path)
    plt, fig, (ax,) = figure_row(1, width=7)
    for col, label in columns.items():
        pts = [(float(r[STEP_KEY]), float(r[col])) for r in rows if r.get(col) not in (None, "", "nan")]
        if pts:
            ax.plot(*zip(*pts, strict=True), label=label)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("mean episode return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend()
    save_figure(plt, fig, png_path)
