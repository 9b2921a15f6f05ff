"""Studies at scale: one config names a grid (games x demonstrator seeds x demo levels x reward presets x numbers
of demos x seeds), which expands into the very step commands of steps 1-4, each with its own run folder, run on
this machine or on a Slurm cluster.

    python -m trex.sweep -c configs/sweep/study2020.yaml                     # here, max_parallel jobs at once
    python -m trex.sweep -c configs/sweep/study2020.yaml --launcher slurm    # on Slurm, through submitit
    python -m trex.sweep -c configs/sweep/study2020.yaml --collect true      # sweep_results.csv, figures, report

Order: demonstrators, then demos, then reward models, then policies, each job after the jobs whose outputs it
reads. Jobs whose outputs exist are skipped and cut-off ones resume (every step does, exactly), so rerunning a
sweep after a preemption or a failed node finishes what is left. A failed job is reported with its log; the jobs
that need its outputs are not started; the others go on. Demos are generated once per game, demonstrator seed
and number of levels, with the demo keys of the `trex` mapping, so every preset trains on the same demos.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from toolkit.cli import UserError, run_main
from toolkit.config import parse_config
from toolkit.files import exclusive, write_json
from trex.pipeline.launchers import run_local, run_slurm
from trex.pipeline.steps import STAGES
from trex.pipeline.sweep_plan import SweepConfig, expand, write_configs
from trex.pipeline.sweep_report import collect


def main(argv: list[str]) -> dict[str, str] | Path:
    cfg = parse_config(SweepConfig, argv, prog="python -m trex.sweep", description=__doc__.splitlines()[0])
    jobs = expand(cfg)
    with exclusive(cfg.run_dir):
        if cfg.collect:
            return collect(cfg, jobs, expand(dataclasses.replace(cfg, steps=list(STAGES))))
        write_configs(cfg, jobs)
        log_dir = Path(cfg.run_dir) / "logs"
        status = (
            run_local(jobs, cfg.max_parallel, log_dir) if cfg.launcher == "local" else run_slurm(cfg, jobs, log_dir)
        )
        write_json(Path(cfg.run_dir) / "status.json", status)
        failed = sorted(n for n, s in status.items() if s in ("failed", "not run"))
        counts = {s: sum(v == s for v in status.values()) for s in ("done", "ok", "failed", "not run")}
        print(
            f"sweep {cfg.name}: "
            + ", ".join(f"{v} {k}" for k, v in counts.items())
            + f" -> {Path(cfg.run_dir) / 'status.json'}",
            flush=True,
        )
        if failed:
            raise UserError(
                f"{len(failed)} job(s) failed or not run ({', '.join(failed[:3])}"
                f"{', ...' if len(failed) > 3 else ''}); logs in {log_dir}; rerun the same command to "
                "retry them"
            )
        return status


if __name__ == "__main__":
    run_main(main)
