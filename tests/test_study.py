"""The study end to end at a tiny size: its report's figures are those of its JSON files, every step is skipped
when done, and a study killed at any moment and rerun ends as an uninterrupted one."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import yaml
from tiny_configs import ppo_section

from baseline_agent.checkpoint import list_checkpoints, load_checkpoint
from toolkit.cli import UserError
from toolkit.logger import fmt
from trex.demos.store import read_index
from trex.level_sets import EVALUATION_SETS, SCORED_SETS
from trex.reward.evaluation import centred_figures, seed_interval
from trex.study import main as study_main

ROOT = Path(__file__).resolve().parents[1]
# The quickstart's layout in miniature: demonstrators on every level (num_levels 0, as configs/study/starpilot2020.yaml
# too), training demos and the policy on 8 levels, held-out levels from 1,000 on.
MICRO = {
    "env_name": "starpilot",
    "num_levels": 0,
    "torch_threads": 1,
    "eval_episodes": 4,
    "video_steps": 30,
    "reward_seeds": 2,
    "ppo": ppo_section(hidden_size=32, total_timesteps=768, eval_interval=1),
    "trex": {
        "num_demos": 10,
        "num_held_out_demos": 6,
        "max_episode_steps": 60,
        "num_envs": 8,
        "num_pairs": 100,
        "min_snippet_length": 10,
        "max_snippet_length": 20,
        "epochs": 1,
        "demo_num_levels": 8,
        "held_out_start_level": 1000,
    },
    "policy": {"total_timesteps": 512, "num_levels": 8},
}
TIMING = ("pairs_per_s", "frames_per_s", "train_time_s", "wall_time_s")


def _config(tmp: Path, name: str, **changes) -> Path:
    cfg = tmp / f"{name}.yaml"
    cfg.write_text(yaml.safe_dump({**MICRO, "run_dir": str(tmp / name), **changes}))
    return cfg


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """One uninterrupted micro study, shared: (config file, run folder, its report, the printed output)."""
    tmp = tmp_path_factory.mktemp("study")
    cfg = _config(tmp, "run")
    mp = pytest.MonkeyPatch()
    mp.setenv("OMP_NUM_THREADS", "1")  # the steps' own processes
    try:
        report = study_main(["-c", str(cfg)])
    finally:
        mp.undo()
    return cfg, tmp / "run", report


def _rows(text: str, first_cell: str) -> list[list[str]]:
    """The cells of every markdown table row whose first cell is `first_cell`."""
    return [
        [c.strip() for c in line.strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith(f"| {first_cell} |")
    ]


def test_report_figures_are_those_of_the_runs_json(study):
    _, run, report = study
    text = report.read_text()
    metrics = [json.loads((run / "reward" / f"seed_{s}" / "metrics.json").read_text()) for s in (0, 1)]
    figures = json.loads((run / "reward.json").read_text())["figures"]
    for key, name in SCORED_SETS.items():
        spearman, length = figures[key]["spearman"], figures[key]["length_spearman"]
        assert spearman["mean"] == pytest.approx(sum(m[key]["spearman"] for m in metrics) / 2)
        assert spearman["ci95_low"] <= spearman["mean"] <= spearman["ci95_high"]
        assert spearman["seeds"] == seed_interval([m[key]["spearman"] for m in metrics], bounds=(-1.0, 1.0))
        assert length["mean"] == metrics[0][key]["length_baseline"]["spearman"]
        centred = figures[key]["centred_spearman"]
        assert centred["mean"] == pytest.approx(sum(centred_figures(m[key])["spearman"] for m in metrics) / 2)
        assert centred["ci95_low"] <= centred["mean"] <= centred["ci95_high"]
        assert f"centred {fmt(centred['mean'])} [" in text
        want = [f"{fmt(x['mean'])} [{fmt(x['ci95_low'])}, {fmt(x['ci95_high'])}]" for x in (spearman, length)]
        row, beyond = _rows(text, name)  # the reward table, then the figures beyond the passing of time
        assert (row[1], row[2], row[6]) == (str(metrics[0][key]["n_demos"]), *want)
        partial = seed_interval([m[key]["partial_spearman"]["value"] for m in metrics], bounds=(-1.0, 1.0))
        assert beyond[2] == f"{fmt(partial['mean'])} [{fmt(partial['ci95_low'])}, {fmt(partial['ci95_high'])}]"
        snippet = np.mean([m[key]["snippet_accuracy"] for m in metrics])
        assert beyond[3].startswith(fmt(snippet))
        assert f"**{want[0]}** (episode-length baseline {want[1]}" in text  # the headline
    evaluation = json.loads((run / "evaluation.json").read_text())
    for agent, label in (
        ("trex_policy", "T-REX policy (learned reward only)"),
        ("survival_control", "control: PPO on survival alone (+1 per step)"),
        ("true_reward_ppo", "control: PPO on the true reward, same budget"),
        ("demonstrator", "final demonstrator (true reward)"),
        ("random", "uniform random actions"),
    ):
        rows = _rows(text, label)
        assert [(r[1], r[2], r[5], r[7]) for r in rows] == [
            (
                name,
                fmt(evaluation[agent][s]["mean"]),
                fmt(evaluation[agent][s]["length"]["mean"], ".0f"),
                str(evaluation[agent][s]["n"]),
            )
            for s, name in EVALUATION_SETS.items()
        ]
    demos = json.loads((run / "demos" / "summary.json").read_text())
    for level_set in ("train", "new_episodes", "held_out"):
        (row,) = _rows(text, level_set)
        assert row[2] == str(demos["level_sets"][level_set]["count"]) and row[5] == fmt(
            demos["level_sets"][level_set]["max"]
        )
    assert evaluation["levels"] == {"training_levels": [0, 8], "held_out": [1000, 100_000]}
    assert "--start_level 1000 " in text  # the video's command, listed, names the held-out levels
    for image in (
        "ppo/learning_curve.png",
        "reward/seed_0/predicted_vs_true.png",
        "reward/seed_0/reward_by_time.png",
        "reward/seed_0/cumulative_reward.png",
        "policy/learning_curve.png",
    ):
        assert f"]({image})" in text and (run / image).is_file()
    with av.open(str(run / "policy.mp4")) as video:
        assert sum(1 for _ in video.decode(video=0)) == 30


def test_a_finished_study_is_skipped_step_by_step(study, capsys):
    cfg, _, _ = study
    capsys.readouterr()
    study_main(["-c", str(cfg)])
    # PPO, demos, 2 reward seeds, policy, its two controls, video
    assert capsys.readouterr().out.count("outputs exist, skipped") == 8


def _json(path: Path, root: Path) -> dict:
    return json.loads(path.read_text().replace(str(root), "<run>"))


def _kill_when(cmd: list[str], ready, what: str) -> None:
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 300
    while not ready() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the study and the step it runs
    proc.wait()
    assert ready() and proc.returncode == -signal.SIGKILL, f"the study did not reach {what} before it ended"


def test_a_study_killed_at_any_moment_ends_as_an_uninterrupted_one(study, tmp_path):
    _, whole, _ = study
    # without the controls (two PPO runs that read no earlier step's output): the kills land in steps 1 and 3
    cfg, run = _config(tmp_path, "killed", controls=False), tmp_path / "killed"
    cmd = [sys.executable, "-m", "trex.study", "-c", str(cfg)]
    _kill_when(cmd, lambda: len(list_checkpoints(run / "ppo" / "checkpoints")) >= 2, "step 1")
    _kill_when(cmd, lambda: (run / "reward" / "seed_0" / "train_log.csv").is_file(), "step 3")
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    same = lambda name: _json(run / name, run) == _json(whole / name, whole)  # folders' own paths aside
    killed, uninterrupted = (_json(r / "evaluation.json", r) for r in (run, whole))
    assert {"trex_policy", "demonstrator", "random"} <= set(killed) and "true_reward_ppo" not in killed
    assert killed == {k: uninterrupted[k] for k in killed} and same("demos/summary.json")
    index = lambda root: [
        dataclasses.replace(r, checkpoint=r.checkpoint.replace(str(root), "")) for r in read_index(root / "demos")
    ]
    assert index(run) == index(whole)
    for seed in (0, 1):
        got, want = (_json(r / "reward" / f"seed_{seed}" / "metrics.json", r) for r in (run, whole))
        assert {k: v for k, v in got.items() if k not in TIMING} == {k: v for k, v in want.items() if k not in TIMING}
    for step in ("ppo", "policy"):
        got, want = (load_checkpoint(list_checkpoints(r / step / "checkpoints")[-1])["model"] for r in (run, whole))
        assert all(torch.equal(got[k], want[k]) for k in got), step


def test_a_bad_key_in_a_section_names_the_section(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "run"), "trex": {"num_demoz": 3}}))
    with pytest.raises(UserError, match="section 'trex': unknown config key 'num_demoz'"):
        study_main(["-c", str(cfg)])
    cfg.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "run"), "trex": {"frame_stack": 2}}))
    with pytest.raises(UserError, match="section 'trex': frame_stack 2: step 4 scores its reward one frame per step"):
        study_main(["-c", str(cfg)])
    assert [p.name for p in (tmp_path / "run").iterdir()] == [".lock"]  # refused before any step ran
