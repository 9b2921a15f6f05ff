"""Where a sweep's jobs run: here, at most `max_parallel` at once (`run_local`), or on Slurm through submitit
(`run_slurm`); each job starts once every job whose outputs it reads has succeeded."""

from __future__ import annotations

import shlex
import subprocess
import time
from pathlib import Path
from typing import Any

from toolkit.cli import exit_reason, oom_kills
from trex.pipeline.steps import STAGES, Step, start_command
from trex.pipeline.sweep_plan import MAX_REQUEUES, SweepConfig


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
