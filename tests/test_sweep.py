"""Sweeps: a tiny grid through the local launcher end to end (real step commands, a killed sweep resumed on rerun),
failures reported while the other jobs go on, and the Slurm launcher through submitit against a real single-node
Slurm on localhost (tests/slurm/start_slurm.sh; skipped, saying why, where Slurm cannot be had)."""

import csv
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from tiny_configs import ppo_flags, ppo_section

from baseline_agent.ppo_config import PPOConfig
from toolkit.cli import UserError
from toolkit.logger import fmt
from trex.config import TrexConfig
from trex.pipeline.launchers import run_local
from trex.pipeline.steps import Step
from trex.pipeline.sweep_plan import SweepConfig, expand
from trex.sweep import main as sweep_main

ROOT = Path(__file__).resolve().parents[1]
GRID = {
    "name": "tiny",
    "games": ["starpilot"],
    "num_levels": 20,
    "torch_threads": 1,
    "num_demos": [4, 6],
    "seeds": [0, 1],
    "max_parallel": 2,
    "ppo": ppo_section(total_timesteps=512),
    "trex": {
        "num_held_out_demos": 4,
        "max_episode_steps": 50,
        "num_envs": 8,
        "num_pairs": 64,
        "batch_size": 16,
        "min_snippet_length": 5,
        "max_snippet_length": 10,
        "epochs": 1,
        "eval_interval": 32,
    },
}


def _config(folder: Path, **changes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump({**GRID, "run_dir": str(folder / "run"), **changes}))
    return path


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    """The 2x2 grid (2 demo counts x 2 seeds) run by the local launcher, killed once mid-way and rerun."""
    folder = tmp_path_factory.mktemp("sweep")
    cfg = _config(folder)
    cmd = [sys.executable, "-m", "trex.sweep", "-c", str(cfg)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    demos = folder / "run" / "demos" / "starpilot_d0_Lown" / "index.csv"
    deadline = time.time() + 300
    while not demos.is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher and the job it runs
    proc.wait()
    killed_during_demos = demos.is_file() and not (folder / "run" / "status.json").exists()
    start = time.time()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    return folder, cfg, done, killed_during_demos, time.time() - start


def test_local_grid_runs_every_step_command_and_resumes_after_a_kill(local_sweep):
    folder, cfg, done, killed_during_demos, _ = local_sweep
    assert killed_during_demos, "the kill did not land while demos were being played"
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 done before" in done.stdout and "5 to run" in done.stdout  # PPO had finished; demos resumed
    status = json.loads((folder / "run" / "status.json").read_text())
    assert status == {
        "ppo_starpilot_d0": "done",
        "demos_starpilot_d0_Lown": "ok",
        **{f"reward_starpilot_d0_Lown_default_n{n}_s{s}": "ok" for n in (4, 6) for s in (0, 1)},
    }
    for n in (4, 6):
        for s in (0, 1):
            run = folder / "run" / "reward" / f"starpilot_d0_Lown_default_n{n}_s{s}"
            metrics = json.loads((run / "metrics.json").read_text())
            assert metrics["num_train_demos"] + metrics["num_val_demos"] == n and metrics["seed"] == s
            assert (folder / "run" / "logs" / f"reward_starpilot_d0_Lown_default_n{n}_s{s}.log").is_file()
    again = subprocess.run(
        [sys.executable, "-m", "trex.sweep", "-c", str(cfg)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0 and "6 done before, 0 to run" in again.stdout


def test_collect_gathers_every_run_into_one_table_and_report(local_sweep):
    folder, cfg, *_ = local_sweep
    report = sweep_main(["-c", str(cfg), "--collect", "true"])
    rows = list(csv.DictReader((folder / "run" / "sweep_results.csv").open()))
    assert sorted((r["num_demos"], r["seed"]) for r in rows) == [("4", "0"), ("4", "1"), ("6", "0"), ("6", "1")]
    for r in rows:
        metrics = json.loads((Path(r["reward_run_dir"]) / "metrics.json").read_text())
        assert float(r["held_out_spearman"]) == metrics["held_out"]["spearman"]
        assert float(r["demonstrator_train_return"]) > 0
    text = report.read_text()
    assert (folder / "run" / "correlation_starpilot_default.png").is_file()
    assert "| starpilot | default | 20 | 4 | 2 |" in text and "| starpilot | default | 20 | 6 | 2 |" in text


SHIPPED = {
    "starpilot": ROOT / "results" / "level_generalisation" / "demonstrators",
    "chaser": ROOT / "results" / "procgen16" / "demonstrators" / "chaser",
}
STEP4_GAME = "chaser"  # step 4's jobs are the same for every game: one game's show its report row


def test_a_benchmark_from_shipped_demonstrators_has_no_step_1_and_reports_each_game_with_clustered_intervals(tmp_path):
    cfg = _config(
        tmp_path,
        games=sorted(SHIPPED),
        demonstrators={game: str(folder) for game, folder in SHIPPED.items()},
        num_levels=0,
        demo_levels=[3],
        num_demos=[6],
        steps=["demos", "reward", "policy", "control"],
        trex={**GRID["trex"], "held_out_start_level": 1_000_000, "held_out_num_levels": 3, "num_held_out_demos": 6},
        policy={"total_timesteps": 256},
        eval_episodes=4,
    )
    status = sweep_main(["-c", str(cfg), "--steps", "demos,reward"])
    assert status == {
        **{f"demos_{g}_d0_L3": "ok" for g in SHIPPED},
        **{f"reward_{g}_d0_L3_default_n6_s{s}": "ok" for g in SHIPPED for s in (0, 1)},
    }  # no PPO job: the demos read the shipped checkpoints
    status = sweep_main(["-c", str(cfg), "--games", STEP4_GAME])  # step 4 and its controls, on one game
    assert status == {
        f"demos_{STEP4_GAME}_d0_L3": "done",
        **{f"reward_{STEP4_GAME}_d0_L3_default_n6_s{s}": "done" for s in (0, 1)},
        **{f"policy_{STEP4_GAME}_d0_L3_default_n6_s{s}": "ok" for s in (0, 1)},
        **{f"control_{k}_{STEP4_GAME}_d0_s{s}": "ok" for k in ("survival", "true_reward") for s in (0, 1)},
    }
    configs = tmp_path / "run" / "configs"
    controls = yaml.safe_load((configs / f"control_true_reward_{STEP4_GAME}_d0_s1.yaml").read_text())
    survival = yaml.safe_load((configs / f"control_survival_{STEP4_GAME}_d0_s1.yaml").read_text())
    policy = yaml.safe_load((configs / f"policy_{STEP4_GAME}_d0_L3_default_n6_s1.yaml").read_text())
    assert controls["total_timesteps"] == survival["total_timesteps"] == policy["total_timesteps"] == 256
    assert controls["seed"] == survival["seed"] == 1 and survival["reward"] == "survival"
    assert controls["held_out_start_level"] == policy["held_out_start_level"] == 1_000_000
    assert "reward_model" not in controls  # step 1's config: PPO on the true reward
    for game, folder in SHIPPED.items():
        index = list(csv.DictReader((tmp_path / "run" / "demos" / f"{game}_d0_L3" / "index.csv").open()))
        assert {r["checkpoint"] for r in index} <= {str(p) for p in (folder / "checkpoints").glob("step_*.pt")}
    report = sweep_main(["-c", str(cfg), "--collect", "true"]).read_text()
    rows = list(csv.DictReader((tmp_path / "run" / "sweep_results.csv").open()))
    held = {r["game"]: r for r in csv.DictReader((tmp_path / "run" / "sweep_held_out.csv").open())}
    assert sorted(held) == sorted(SHIPPED)
    for game, folder in SHIPPED.items():
        mine = [r for r in rows if r["game"] == game]
        shipped = json.loads((folder / "summary.json").read_text())
        assert {float(r["demonstrator_held_out_return"]) for r in mine} == {shipped["held_out_return"]}
        h = held[game]
        seeds_mean = sum(float(r["held_out_centred_spearman"]) for r in mine) / len(mine)
        assert float(h["centred_spearman_mean"]) == pytest.approx(seeds_mean)
        assert float(h["centred_spearman_ci95_low"]) <= seeds_mean <= float(h["centred_spearman_ci95_high"])
        pairs_mean = sum(float(r["labels_held_out_model_accuracy"]) for r in mine) / len(mine)
        assert float(h["pairs_model_accuracy_mean"]) == pytest.approx(pairs_mean)
        assert float(h["pairs_model_accuracy_ci95_low"]) <= pairs_mean <= float(h["pairs_model_accuracy_ci95_high"])
        assert h["seeds"] == "2" and h["n_levels"] == "3" and h["ranking"] == "return"
        returns = json.loads((Path(mine[0]["reward_run_dir"]) / "metrics.json").read_text())["train_demo_returns"]
        assert h["distinct_returns"] == str(len(set(returns))) == mine[0]["distinct_returns"]
    assert "Held-out levels, clustered" in report and (tmp_path / "run" / "held_out_by_game.png").is_file()
    game = STEP4_GAME  # step 4's final policy beside its controls and random actions, on the held-out levels
    rand = json.loads((tmp_path / "run" / f"random_{game}.json").read_text())
    final = json.loads((tmp_path / "run" / "controls" / f"true_reward_{game}_d0_s1" / "held_out_eval.json").read_text())
    assert rand["n"] == final["n"] == 4 and rand["levels"] == final["levels"] == [1_000_000, 3]
    assert final["checkpoint"].endswith("step_0000000256.pt") and rand["checkpoint"] is None
    step4 = report.split("Step 4 beside its controls")[1].split("![")[0]
    assert not any(f"| {g} |" in step4 for g in SHIPPED if g != game)  # no step 4 run, no row
    row = next(line for line in step4.splitlines() if f"| {game} |" in line)
    cells = [c.strip() for c in row.split("|")[1:-1]]
    true_reward = [
        json.loads((tmp_path / "run" / "controls" / f"true_reward_{game}_d0_s{s}" / "held_out_eval.json").read_text())
        for s in (0, 1)
    ]
    assert cells[:5] == [game, "default", "3", "6", "2"]
    assert cells[6].startswith(fmt((true_reward[0]["mean"] + true_reward[1]["mean"]) / 2))
    assert cells[8].startswith(fmt(rand["mean"]))
    assert (tmp_path / "run" / "step4_held_out.png").is_file()
    with pytest.raises(UserError, match="has no checkpoints folder"):
        SweepConfig(demonstrators={"chaser": str(tmp_path)}).check()
    with pytest.raises(UserError, match="one run per game"):
        SweepConfig(demonstrators={"chaser": str(SHIPPED["chaser"])}, demonstrator_seeds=[0, 1]).check()


class FakeJob(Step):
    def done(self) -> bool:
        return False


def test_a_failed_job_is_reported_and_the_others_go_on(tmp_path, capsys):
    job = lambda name, code, needs=(): FakeJob(
        name, "reward", ["python", "-c", f"raise SystemExit({code})"], needs=list(needs)
    )
    jobs = [job("a", 3), job("b", 0), job("c", 0, ["a"]), job("d", 0, ["b"])]
    status = run_local(jobs, 2, tmp_path / "logs", poll=0.02)
    assert status == {"a": "failed", "b": "ok", "c": "not run", "d": "ok"}
    out = capsys.readouterr().out
    assert f"failed: a in 0s (exit 3; log {tmp_path / 'logs' / 'a.log'})" in out
    assert "not run: c (a job it needs failed)" in out


def test_the_grid_expands_in_dependency_order_and_refuses_bad_keys(tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text("l1_reg: 0.05\nnum_envs: 99\n")  # a preset's demo keys are its demos job's
    cfg = SweepConfig(
        run_dir=str(tmp_path / "run"),
        games=["coinrun", "starpilot"],
        demo_levels=[8, 0],
        presets={"default": "", "l1": str(preset)},
        num_demos=[12],
        seeds=[0, 1],
        steps=["ppo", "demos", "reward", "policy"],
    )
    jobs = expand(cfg)
    count = {s: sum(j.stage == s for j in jobs) for s in ("ppo", "demos", "reward", "policy")}
    assert count == {"ppo": 2, "demos": 4, "reward": 16, "policy": 16}
    names = [j.name for j in jobs]
    assert all(names.index(n) < names.index(j.name) for j in jobs for n in j.needs)
    l1 = [j for j in jobs if j.stage == "reward" and "_l1_" in j.name]
    assert {j.config.l1_reg for j in l1} == {0.05} and {j.config.num_envs for j in l1} == {32}
    assert {j.config.demo_num_levels for j in l1} == {8, 0}
    games = expand(
        dataclasses.replace(cfg, per_game={"coinrun": {"ppo": {"total_timesteps": 4096}, "trex": {"l1_reg": 0.5}}})
    )
    budget = {j.config.env_name: j.config.total_timesteps for j in games if j.stage == "ppo"}
    assert budget == {"coinrun": 4096, "starpilot": PPOConfig().total_timesteps}  # one game's budget of its own
    # a game's step-3 key over the trex section's, under a preset's (the axis a sweep compares)
    l1 = {(j.config.env_name, j.name.split("_")[4]): j.config.l1_reg for j in games if j.stage == "reward"}
    assert l1 == {
        ("coinrun", "default"): 0.5,
        ("coinrun", "l1"): 0.05,
        ("starpilot", "default"): TrexConfig().l1_reg,
        ("starpilot", "l1"): 0.05,
    }
    with pytest.raises(UserError, match="'per_game': 'reward' of coinrun is not one of: ppo, trex, policy"):
        SweepConfig(per_game={"coinrun": {"reward": {}}}).check()
    with pytest.raises(UserError, match="section 'trex': unknown config key 'num_demoz'"):
        expand(SweepConfig(trex={"num_demoz": 3}))
    with pytest.raises(UserError, match="config key 'slurm': 'gpus' is not one of"):
        SweepConfig(slurm={"ppo": {"gpus": 1}}).check()
    # a reward reading stacked frames: refused before any job where a policy would have to use it, not otherwise
    stacked = dataclasses.replace(cfg, trex={"frame_stack": 2})
    with pytest.raises(UserError, match="preset 'default': frame_stack 2: step 4 scores its reward one frame"):
        expand(stacked)
    assert {j.config.frame_stack for j in expand(dataclasses.replace(stacked, steps=["reward"]))} == {2}


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """A single-node Slurm cluster on localhost, started for these tests (installed on first use, as root)."""
    folder = tmp_path_factory.mktemp("slurm")
    start = subprocess.run(
        ["bash", str(ROOT / "tests/slurm/start_slurm.sh"), str(folder)], capture_output=True, text=True, timeout=600
    )
    if start.returncode == 3:
        pytest.skip(f"no Slurm here: {start.stderr.strip()}")
    assert start.returncode == 0, start.stderr
    mp = pytest.MonkeyPatch()
    mp.setenv("SLURM_CONF", start.stdout.strip())
    yield start.stdout.strip()
    mp.undo()
    subprocess.run(["bash", str(ROOT / "tests/slurm/stop_slurm.sh"), str(folder)], timeout=60)


def test_slurm_launcher_submits_arrays_with_dependencies_and_collects(local_sweep, slurm_cluster, tmp_path):
    folder, *_ = local_sweep
    shutil.copytree(folder / "run" / "ppo", tmp_path / "run" / "ppo")  # the demonstrator: step 1 is not submitted
    cfg = _config(
        tmp_path,
        num_demos=[6],  # one demos job, then an array of 2 reward jobs that depends on it
        steps=["demos", "reward"],
        launcher="slurm",
        slurm={"default": {"timeout_min": 10, "cpus_per_task": 1}, "array_parallelism": 2},
    )
    status = sweep_main(["-c", str(cfg)])
    assert status == {
        "demos_starpilot_d0_Lown": "ok",
        **{f"reward_starpilot_d0_Lown_default_n6_s{s}": "ok" for s in (0, 1)},
    }
    jobs = sorted((tmp_path / "run" / "slurm").glob("*_submission.sh"))
    text = "\n".join(p.read_text() for p in jobs)
    assert "#SBATCH --dependency=afterany:" in text and "#SBATCH --array=0-1%2" in text
    for name, original in (("reward_starpilot_d0_Lown_default_n6_s1", folder / "run"),):
        got = json.loads((tmp_path / "run" / "reward" / name.removeprefix("reward_") / "metrics.json").read_text())
        want = json.loads((original / "reward" / name.removeprefix("reward_") / "metrics.json").read_text())
        assert got["held_out"] == want["held_out"]  # the same command gives the same model there as here
    sweep_main(["-c", str(cfg), "--collect", "true"])
    assert len(list(csv.DictReader((tmp_path / "run" / "sweep_results.csv").open()))) == 2


def _submitit_task(folder: Path) -> int | None:
    """The pid of the submitit task that runs the jobs of `folder` (the process its time limit's signal goes to)."""
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0") if proc.name.isdigit() else []
        except OSError:  # the process ended meanwhile
            continue
        if b"submitit.core._submit" in cmd and str(folder).encode() in cmd:
            return int(proc.name)
    return None


def test_a_job_signalled_ahead_of_its_time_limit_is_requeued_and_resumes_where_it_stopped(tmp_path):
    """submitit's own time-limit machinery (its local executor: the checkpoint call on the USR2 signal, the
    requeue, counted as a time-out since the limit is under 10 minutes) around the task Slurm runs: the step is cut
    off, requeued, resumes from its newest checkpoint and finishes. The signal is sent once the step has
    checkpointed, as the executor sends it ahead of the limit, so that the cut lands mid-run however fast or busy
    the CPU (a wall-clock limit cuts a busy CPU's job more often than the local executor restarts it: 6 times). On a
    real Slurm cluster the signal and the requeue are Slurm's."""
    import submitit

    from baseline_agent.checkpoint import list_checkpoints
    from trex.pipeline.launchers import StepTask

    run, log, folder = tmp_path / "ppo", tmp_path / "job.log", tmp_path / "submitit"
    command = ["python", "baseline_agent/train.py", *ppo_flags(save_interval=1, log_interval=50)]
    command += ["--total_timesteps", "3200", "--run_dir", str(run)]  # 50 updates, a checkpoint after each
    executor = submitit.LocalExecutor(folder=str(folder), max_num_timeout=10)
    executor.update_parameters(timeout_min=5, signal_delay_s=30)  # the executor's own signal comes at 4.5 min
    job = executor.submit(StepTask(10), command, str(log))
    deadline = time.time() + 300
    while not list_checkpoints(run / "checkpoints") and not job.done() and time.time() < deadline:
        time.sleep(0.05)
    task = _submitit_task(folder)
    assert task is not None and not job.done(), "the step ended before it could be signalled"
    os.kill(task, signal.SIGUSR2)
    job.result()  # raises if the job failed
    text = log.read_text()
    assert text.count("(10 requeues left)") == 1 and text.count("(9 requeues left)") == 1, text  # cut off once
    assert "terminated (SIGTERM)" in text and "resuming" in text
    assert list_checkpoints(run / "checkpoints")[-1].name == "step_0000003200.pt"
    submitit_log = "".join(path.read_text() for path in folder.glob("*_log.*"))
    assert "this job is timed-out" in submitit_log and "(9 remaining timeouts)" in submitit_log  # a time-out's count


def test_requeues_are_bounded():
    from trex.pipeline.launchers import StepTask

    task = StepTask(2)
    first = task.checkpoint(["python", "x.py"], "log")
    assert first.function.requeues == 1 and first.args == (["python", "x.py"], "log")
    assert first.function.checkpoint(*first.args).function.requeues == 0
    assert StepTask(0).checkpoint(["python", "x.py"], "log") is None
    assert max_requeues_of({"default": {"max_requeues": 5}, "ppo": {"max_requeues": 1}}) == {"ppo": 1, "demos": 5}


def max_requeues_of(slurm: dict) -> dict:
    from trex.pipeline.launchers import max_requeues

    cfg = SweepConfig(slurm=slurm)
    cfg.check()
    return {stage: max_requeues(cfg, stage) for stage in ("ppo", "demos")}


def test_a_benchmark_merge_replaces_a_games_rows_and_its_intervals_survive_the_csv(tmp_path):
    """results/procgen16/merge.py: a newly collected game's rows replace its old ones, the other games' stay as
    they were, and a held-out row read back from its CSV has its intervals as the report wrote them."""
    import importlib.util

    from toolkit.files import write_csv
    from trex.pipeline.sweep_report import flat_row, nested_row

    spec = importlib.util.spec_from_file_location("merge", ROOT / "results" / "procgen16" / "merge.py")
    merge = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(merge)
    row = lambda game, x: {
        "game": game,
        "demo_levels": 8,
        "ranking": "return",
        "centred_spearman": {"mean": x, "ci95_low": x - 0.25, "ci95_high": None},
    }
    old = [flat_row(row("chaser", 0.5)), flat_row(row("ninja", 0.1)), flat_row(row("starpilot", -0.125))]
    write_csv(tmp_path / "old.csv", old, tuple(old[0]))
    write_csv(tmp_path / "new.csv", [flat_row(row("ninja", 0.75))], tuple(old[0]))
    rows, columns = merge.merged(tmp_path / "old.csv", tmp_path / "new.csv")
    assert columns == list(old[0])
    assert [nested_row(r) for r in rows] == [row("chaser", 0.5), row("starpilot", -0.125), row("ninja", 0.75)]
