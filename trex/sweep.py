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
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from baseline_agent.envs import GAMES, MODES
from baseline_agent.ppo_config import PPOConfig
from toolkit.cli import UserError, exit_reason, oom_kills, run_main
from toolkit.config import config_dict, load_yaml, option, parse_config, save_run_config
from toolkit.files import exclusive, write_json
from toolkit.runtime import RuntimeConfig
from toolkit.tracking import TrackingConfig, tracking_keys
from trex.config import TrexConfig
from trex.pipeline.steps import (
    STAGES,
    Step,
    build_section,
    config_step,
    policy_config,
    ppo_config,
    start_command,
    write_step_configs,
)

# TrexConfig keys that say which demos exist: a reward job takes them from its demos job, whatever its preset says.
DEMO_KEYS = (
    "env_name",
    "distribution_mode",
    "train_start_level",
    "train_num_levels",
    "demo_num_levels",
    "held_out_start_level",
    "held_out_num_levels",
    "checkpoint_dir",
    "checkpoints",
    "num_held_out_demos",
    "checkpoint_sampling",
    "noise_levels",
    "greedy",
    "max_episode_steps",
    "num_envs",
    "demo_dir",
)
SLURM_KEYS = ("partition", "timeout_min", "gpus_per_node", "cpus_per_task", "mem_gb", "max_requeues")
MAX_REQUEUES = 3  # requeues of a job cut off by its time limit or a preemption, before it counts as failed


@dataclass
class SweepConfig(RuntimeConfig, TrackingConfig):
    """A grid of T-REX runs. `ppo`, `trex` and `policy` hold each step's own keys for every run of the grid."""

    name: str = option("sweep", "the sweep's name, in its report and Slurm job names")
    run_dir: str = option("runs/sweep", "folder of the sweep: configs/, logs/, one folder per job and stage")
    games: list[str] = option(["starpilot"], "Procgen games", choices=GAMES)
    distribution_mode: str = option("easy", "Procgen distribution mode", choices=MODES)
    num_levels: int = option(200, "the demonstrators' training levels (0 = every level)", min=0)
    start_level: int = option(0, "first training level", min=0)
    demonstrator_seeds: list[int] = option([0], "seeds of step 1, one demonstrator run each", min=0)
    demo_levels: list[int] = option(
        [],
        "numbers of distinct levels the training demos come from (0 = a fresh level "
        "per demo); empty = the trex keys' own",
        min=0,
    )
    presets: dict = option({"default": ""}, "reward presets, name: YAML file of step-3 keys ('' = the defaults)")
    num_demos: list[int] = option([12, 25, 50, 100], "numbers of training demos", min=2)
    seeds: list[int] = option([0, 1, 2], "seeds of steps 3 and 4 (reward models and policies)", min=0)
    steps: list[str] = option(
        ["ppo", "demos", "reward"], "stages to run (policy: a PPO run on each reward model)", choices=STAGES
    )
    ppo: dict = option({}, "step 1 keys for every demonstrator (baseline_agent/train.py --help)")
    trex: dict = option({}, "step 2-3 keys for every demo folder and reward model (trex/reward_model.py train --help)")
    policy: dict = option(
        {}, "step 4 keys for every policy (trex/train_policy.py --help); PPO keys default to step 1's"
    )
    launcher: str = option(
        "local", "where the jobs run: local (this machine) or slurm (through submitit)", choices=("local", "slurm")
    )
    max_parallel: int = option(2, "jobs at once with the local launcher", min=1)
    slurm: dict = option(
        {},
        "Slurm resources: {default: {partition, timeout_min, gpus_per_node, cpus_per_task, "
        "mem_gb, max_requeues (default 3)}, ppo: {...}, demos: {...}, reward: {...}, policy: {...}, "
        "array_parallelism: N}",
    )
    collect: bool = option(False, "gather the finished runs into sweep_results.csv, figures and sweep_report.md")

    def check(self) -> None:
        super().check()
        for stage, values in self.slurm.items():
            if stage == "array_parallelism":
                continue
            if stage not in ("default", *STAGES) or not isinstance(values, dict):
                raise UserError(
                    f"config key 'slurm': '{stage}' is not one of: default, {', '.join(STAGES)}, "
                    "array_parallelism (each stage a mapping)"
                )
            unknown = sorted(set(values) - set(SLURM_KEYS))
            if unknown:
                raise UserError(f"config key 'slurm': '{unknown[0]}' is not one of: {', '.join(SLURM_KEYS)}")
            requeues = values.get("max_requeues", 0)
            if not isinstance(requeues, int) or isinstance(requeues, bool) or requeues < 0:
                raise UserError(f"config key 'slurm': max_requeues of '{stage}' must be a whole number >= 0")


# --------------------------------------------------------------------------- the grid
def expand(cfg: SweepConfig) -> list[Step]:
    """Every job of the grid, in stage order; pure (writes nothing)."""
    run = Path(cfg.run_dir)
    presets = {name: load_yaml(path) if path else {} for name, path in cfg.presets.items()}
    jobs: list[Step] = []
    for game in cfg.games:
        shared = {
            "env_name": game,
            "distribution_mode": cfg.distribution_mode,
            "device": cfg.device,
            "torch_threads": cfg.torch_threads,
            **tracking_keys(cfg, group=cfg.name),  # one W&B group per grid
        }
        for dseed in cfg.demonstrator_seeds:
            tag = f"{game}_d{dseed}"
            trex_values = {
                **shared,
                "train_start_level": cfg.start_level,
                "train_num_levels": cfg.num_levels,
                **cfg.trex,
                "seed": dseed,
                "num_demos": max(cfg.num_demos),
                "checkpoint_dir": str(run / "ppo" / tag / "checkpoints"),
            }
            level_choices: list[int | None] = [*cfg.demo_levels] or [None]
            demo_folders: dict[str, TrexConfig] = {}  # by the folder's tag
            for levels in level_choices:
                ltag = f"{tag}_L{'own' if levels is None else levels}"
                values = {**trex_values, "demo_dir": str(run / "demos" / ltag)}
                if levels is not None:
                    values["demo_num_levels"] = levels
                demo_folders[ltag] = build_section(TrexConfig, values, "section 'trex'")
            ppo_shared = {**shared, "seed": dseed}
            first = next(iter(demo_folders.values()))  # every folder has the same held-out levels
            ppo = ppo_config(ppo_shared, cfg.start_level, cfg.num_levels, cfg.ppo, first, str(run / "ppo" / tag))
            ppo_job = config_step(
                f"ppo_{tag}",
                "ppo",
                ppo,
                step_config_path(cfg, f"ppo_{tag}"),
                grid={"game": game, "demonstrator_seed": dseed},
            )
            jobs.append(ppo_job)
            for ltag, demos in demo_folders.items():
                demo_job = config_step(
                    f"demos_{ltag}", "demos", demos, step_config_path(cfg, f"demos_{ltag}"), [ppo_job.name]
                )
                jobs.append(demo_job)
                cell = {"game": game, "demonstrator_seed": dseed, "demo_levels": demo_level_count(demos)}
                jobs += reward_and_policy_jobs(cfg, shared, presets, ppo, demos, demo_job.name, ltag, cell)
    stages = set(cfg.steps)
    kept = [j for j in jobs if j.stage in stages]
    names = {j.name for j in kept}
    for j in kept:  # a stage left out of `steps` is taken as done (its outputs must exist)
        j.needs = [n for n in j.needs if n in names]
    return sorted(kept, key=lambda j: STAGES.index(j.stage))


def step_config_path(cfg: SweepConfig, name: str) -> Path:
    """Where the job `name` reads its config from."""
    return Path(cfg.run_dir) / "configs" / f"{name}.yaml"


def demo_level_count(demos: TrexConfig) -> int:
    """The number of distinct levels a demo folder's training demos come from (0 = a fresh one per demo)."""
    return demos.demo_num_levels if demos.demo_num_levels is not None else demos.train_num_levels


def reward_and_policy_jobs(
    cfg: SweepConfig,
    shared: dict,
    presets: dict[str, dict],
    ppo: PPOConfig,
    demos: TrexConfig,
    demo_job: str,
    ltag: str,
    cell: dict,
) -> list[Step]:
    """The reward model of every preset, number of demos and seed on one demo folder, each with its policy."""
    run = Path(cfg.run_dir)
    jobs = []
    for preset, preset_values in presets.items():
        for n in cfg.num_demos:
            for seed in cfg.seeds:
                rtag = f"{ltag}_{preset}_n{n}_s{seed}"
                values = {
                    **shared,
                    **cfg.trex,
                    **preset_values,
                    **{k: getattr(demos, k) for k in DEMO_KEYS},
                    "num_demos": n,
                    "seed": seed,
                    "name": preset,
                    "run_dir": str(run / "reward" / rtag),
                }
                reward = build_section(TrexConfig, values, f"preset '{preset}'")
                grid = {**cell, "preset": preset, "num_demos": n, "seed": seed}
                path = step_config_path(cfg, f"reward_{rtag}")
                jobs.append(config_step(f"reward_{rtag}", "reward", reward, path, [demo_job], grid))
                models = [str(Path(reward.run_dir) / "reward_model.pt")]
                policy = policy_config(ppo, cfg.policy, demos, models, str(run / "policy" / rtag), seed=seed)
                path = step_config_path(cfg, f"policy_{rtag}")
                jobs.append(config_step(f"policy_{rtag}", "policy", policy, path, [f"reward_{rtag}"], grid))
    return jobs


def write_configs(cfg: SweepConfig, jobs: list[Step]) -> None:
    save_run_config(cfg.run_dir, config_dict(cfg))
    write_step_configs(jobs)


# --------------------------------------------------------------------------- launchers
def run_local(jobs: list[Step], max_parallel: int, log_dir: Path, poll: float = 0.2) -> dict[str, str]:
    """Run the jobs here, at most `max_parallel` at once, each once every job it needs has succeeded; return
    every job's status: done (before), ok, failed, or not run (a job it needs failed)."""
    status = {j.name: "done" for j in jobs if j.done()}
    waiting = [j for j in jobs if j.name not in status]
    running: dict[str, tuple[subprocess.Popen, Any, float, int | None]] = {}
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f"{len(jobs)} jobs: {len(status)} done before, {len(waiting)} to run, {max_parallel} at once", flush=True)
    try:
        _schedule(waiting, running, status, max_parallel, log_dir, poll)
    finally:  # SIGTERM or Ctrl-C: the running steps stop too (each resumes exactly on the rerun)
        for proc, log, *_ in running.values():
            proc.terminate()
            proc.wait()
            log.close()
    return status


def _schedule(
    waiting: list[Step], running: dict, status: dict[str, str], max_parallel: int, log_dir: Path, poll: float
) -> None:
    """`run_local`'s loop: start what may start, collect what ended, until nothing waits or runs."""
    while waiting or running:
        for j in list(waiting):
            if any(status.get(n) in ("failed", "not run") for n in j.needs):
                status[j.name] = "not run"
                waiting.remove(j)
                print(f"not run: {j.name} (a job it needs failed)", flush=True)
            elif len(running) < max_parallel and all(status.get(n) in ("done", "ok") for n in j.needs):
                log = (log_dir / f"{j.name}.log").open("w")
                proc = start_command(j.command, log)
                running[j.name] = (proc, log, time.time(), oom_kills())
                waiting.remove(j)
                print(f"start: {j.name}: {shlex.join(j.command)}", flush=True)
        for name, (proc, log, t0, kills) in list(running.items()):
            code = proc.poll()
            if code is None:
                continue
            log.close()
            del running[name]
            status[name] = "ok" if code == 0 else "failed"
            where = "" if code == 0 else f" ({exit_reason(code, kills)}; log {log_dir / f'{name}.log'})"
            print(f"{status[name]}: {name} in {time.time() - t0:.0f}s{where}", flush=True)
        time.sleep(poll)


class StepTask:
    """What a Slurm task runs: one step command from the repository root, its output appended to `log`.

    Ahead of a time limit or at a preemption, submitit calls `checkpoint` (Slurm's USR2 signal): the step gets
    SIGTERM and stops within seconds, and the job is requeued, at most `requeues` times, to resume the step where
    it stopped (every step resumes exactly). The step itself ignores USR2, which Slurm sends to it too."""

    def __init__(self, requeues: int):
        self.requeues = requeues
        self.proc: subprocess.Popen | None = None

    def __call__(self, command: list[str], log: str) -> None:
        with open(log, "a") as out:
            out.write(
                f"=== {time.strftime('%Y-%m-%d %H:%M:%S')}: {shlex.join(command)} ({self.requeues} requeues left)\n"
            )
            out.flush()
            self.proc = start_command(command, out, ignore_usr2=True)
            while (code := self.proc.poll()) is None:  # not wait(): `checkpoint` must be able to reap it meanwhile
                time.sleep(0.5)
        if code:
            raise RuntimeError(f"{exit_reason(code, None)}; log {log}")

    def checkpoint(self, command: list[str], log: str) -> Any:
        """The submission that resumes this step after a requeue, or None once the requeues are spent."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if self.requeues <= 0:
            return None
        import submitit

        return submitit.helpers.DelayedSubmission(StepTask(self.requeues - 1), command, log)

    def __getstate__(self) -> dict:
        return {"requeues": self.requeues, "proc": None}


def slurm_parameters(cfg: SweepConfig, stage: str) -> dict[str, Any]:
    """submitit parameters of one stage: the stage's resources over the default ones."""
    values = {**cfg.slurm.get("default", {}), **cfg.slurm.get(stage, {})}
    values.pop("max_requeues", None)
    out: dict[str, Any] = {"name": f"{cfg.name}-{stage}"}
    for key, value in values.items():
        out["slurm_partition" if key == "partition" else key] = value
    if "array_parallelism" in cfg.slurm:
        out["slurm_array_parallelism"] = int(cfg.slurm["array_parallelism"])
    return out


def max_requeues(cfg: SweepConfig, stage: str) -> int:
    """Requeues a job of `stage` may take after a time limit or a preemption (slurm key max_requeues)."""
    return int({**cfg.slurm.get("default", {}), **cfg.slurm.get(stage, {})}.get("max_requeues", MAX_REQUEUES))


def run_slurm(cfg: SweepConfig, jobs: list[Step], log_dir: Path) -> dict[str, str]:
    """Submit each stage as one job array through submitit, after the arrays of the jobs it needs (afterany: a
    task whose inputs are missing fails on its own and is reported); wait for all; return every job's status."""
    import submitit

    status = {j.name: "done" for j in jobs if j.done()}
    log_dir.mkdir(parents=True, exist_ok=True)
    # submitit's own bound on timeouts is the largest stage's; StepTask holds each stage's own.
    bound = max(max_requeues(cfg, stage) for stage in STAGES)
    executor = submitit.AutoExecutor(
        folder=str(Path(cfg.run_dir) / "slurm"), cluster="slurm", slurm_max_num_timeout=bound
    )
    handles: dict[str, Any] = {}
    for stage in STAGES:
        todo = [j for j in jobs if j.stage == stage and j.name not in status]
        if not todo:
            continue
        after = sorted({handles[n].job_id.split("_")[0] for j in todo for n in j.needs if n in handles})
        executor.update_parameters(
            **slurm_parameters(cfg, stage),
            slurm_additional_parameters=({"dependency": "afterany:" + ":".join(after)} if after else {}),
        )
        with executor.batch():
            for j in todo:
                task = StepTask(max_requeues(cfg, stage))
                handles[j.name] = executor.submit(task, j.command, str(log_dir / f"{j.name}.log"))
        print(f"submitted {stage}: {len(todo)} jobs" + (f" after {', '.join(after)}" if after else ""), flush=True)
    for name, handle in handles.items():
        try:
            handle.result()
            status[name] = "ok"
        except Exception as err:  # submitit raises its own failure types
            status[name] = "failed"
            print(f"failed: {name} ({str(err).splitlines()[-1][:200]}; log {log_dir / f'{name}.log'})", flush=True)
    return status


# --------------------------------------------------------------------------- entry point
def main(argv: list[str]) -> dict[str, str] | Path:
    cfg = parse_config(SweepConfig, argv, prog="python -m trex.sweep", description=__doc__.splitlines()[0])
    jobs = expand(cfg)
    with exclusive(cfg.run_dir):
        if cfg.collect:
            from trex.pipeline.sweep_report import collect

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
