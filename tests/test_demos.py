"""Step 2: demonstration generation (trex/demos/generate.py) on tiny random-policy checkpoints, CPU only."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from baseline_agent.envs import NUM_ACTIONS, OBS_SHAPE, Episode
from baseline_agent.models import Policy
from toolkit.cli import UserError
from toolkit.config import build_config, load_yaml
from trex.config import TrexConfig
from trex.demos.generate import Source, generate_procgen_demonstrations, plan_sources, play_round
from trex.demos.store import DemoRecord, check_game, load_demo, read_index

REPO = Path(__file__).resolve().parents[1]
GAME = "starpilot"  # random play both ends episodes and scores within 60 steps


def make_cfg(tmp_path: Path, **kw) -> TrexConfig:
    values = {
        "env_name": GAME,
        "checkpoint_dir": str(tmp_path / "ppo" / "checkpoints"),
        "demo_dir": str(tmp_path / "demos"),
        "num_demos": 6,
        "num_held_out_demos": 3,
        "num_envs": 3,
        "max_episode_steps": 60,
        "train_num_levels": 20,
        "device": "cpu",
        **kw,
    }
    return build_config(TrexConfig, values)


@pytest.fixture(scope="module")
def generated(tmp_path_factory, tiny_checkpoints):
    """One generation run shared by the read-only checks: 3 checkpoints, 6 train, 3 new_episodes and 3 test demos."""
    tmp = tmp_path_factory.mktemp("gen")
    tiny_checkpoints(tmp / "ppo", GAME, (100, 200, 300))
    cfg = make_cfg(tmp)
    return cfg, generate_procgen_demonstrations(cfg)


def test_level_sets_disjoint_and_recorded(generated):
    cfg, new = generated
    records = read_index(cfg.demo_dir)
    assert records == new and Counter(r.level_set for r in records) == {"train": 6, "new_episodes": 3, "held_out": 3}
    for r in records:
        start, count = (int(x) for x in r.level_range.split("+"))
        assert start <= r.level_seed < start + count
    assert {r.level_range for r in records if r.level_set != "held_out"} == {"0+20"}  # the demonstrators' 20 levels
    assert {r.level_range for r in records if r.level_set == "held_out"} == {"20+100000"}  # right after them


def test_demo_files_consistent(generated):
    cfg, new = generated
    for r in new:
        demo = load_demo(cfg.demo_dir, r)
        assert demo.obs.dtype == np.uint8 and demo.obs.shape == (r.length, *OBS_SHAPE)
        assert len(demo.actions) == len(demo.rewards) == r.length <= cfg.max_episode_steps
        assert np.isclose(demo.rewards.sum(), r.ret) and r.file == f"demos/{r.id}.npz"
    assert any(r.length < cfg.max_episode_steps for r in new), "no episode ended on its own"
    summary = load_yaml(Path(cfg.demo_dir) / "summary.json")  # JSON is YAML
    assert summary["level_sets"]["train"]["count"] == 6
    assert summary["level_sets"]["train"]["max"] == max(r.ret for r in new if r.level_set == "train")
    assert build_config(TrexConfig, load_yaml(Path(cfg.demo_dir) / "config.yaml")) == cfg


def test_stratified_uses_every_checkpoint(generated):
    cfg, new = generated
    for level_set, per_ckpt in (("train", 2), ("new_episodes", 1), ("held_out", 1)):
        steps = Counter(r.checkpoint_step for r in new if r.level_set == level_set)
        assert steps == {100: per_ckpt, 200: per_ckpt, 300: per_ckpt}


def test_plan_sources_fills_to_even_shares_and_a_rerun_plans_the_rest():
    rng = lambda: np.random.default_rng(0)
    assert Counter(plan_sources(np.array([3, 0, 1]), 9, rng(), stratified=True)) == {1: 3, 2: 2}  # 3, 3, 3
    full = plan_sources(np.zeros(3, int), 11, rng(), stratified=True)
    assert sorted(Counter(full).values()) == [3, 4, 4] and full == sorted(full)  # grouped by source
    done = np.bincount(full[:5], minlength=3)  # killed after 5 demos: the rerun plans exactly the remainder
    assert plan_sources(done, 11, rng(), stratified=True) == full[5:]
    uniform = plan_sources(np.zeros(2, int), 1000, rng(), stratified=False)
    assert 400 < Counter(uniform)[0] < 600
    assert plan_sources(np.array([5, 0]), 6, rng(), stratified=True) == [1]  # past its share: the rest fills


class ScriptedEnv:
    """A fake VecEnv: slot i plays episodes of the given lengths; a frame holds its time step, reward = t + 1."""

    def __init__(self, lengths: list[list[int]]):
        self.lengths, self.num_envs = lengths, len(lengths)
        self.t, self.ep = [0] * self.num_envs, [0] * self.num_envs

    def level_seeds(self) -> np.ndarray:
        return np.array([100 * i + e for i, e in enumerate(self.ep)])

    def observe(self) -> np.ndarray:
        return np.stack([np.full(OBS_SHAPE, t, np.uint8) for t in self.t])

    def step(self, actions):
        reward = np.array(self.t, np.float32) + 1
        done, finished = np.zeros(self.num_envs, bool), []
        for i in range(self.num_envs):
            self.t[i] += 1
            if self.t[i] == self.lengths[i][min(self.ep[i], len(self.lengths[i]) - 1)]:
                n = self.t[i]
                finished.append((i, Episode(n * (n + 1) / 2, n, 100 * i + self.ep[i])))
                done[i], self.t[i] = True, 0
                self.ep[i] += 1
        return self.observe(), reward, done, finished


def test_a_round_records_one_episode_per_slot_cut_at_the_cap():
    """Frame t is the frame action t was chosen on, reward t follows it; a capped episode is cut, and a slot
    whose episode is recorded plays on unrecorded until the round ends."""
    env = ScriptedEnv([[3, 12], [12, 2], [7]])  # slot 1's first episode (12 steps) exceeds the cap of 5
    torch.manual_seed(0)
    policies = [Policy(NUM_ACTIONS, [4, 8, 8], 32, OBS_SHAPE).eval() for _ in range(2)]
    jobs = [Source(0), Source(1), Source(0, noise=1.0)]
    rollouts = play_round(env, policies, jobs, 5, False, np.random.default_rng(0), torch.device("cpu"))
    assert [(r.slot, r.level_seed, len(r.actions)) for r in rollouts] == [(0, 0, 3), (1, 100, 5), (2, 200, 5)]
    for r in rollouts:
        t = np.arange(len(r.actions))
        assert (r.obs[:, 0, 0, 0] == t).all() and (r.obs == r.obs[:, :1, :1, :1]).all()
        np.testing.assert_array_equal(r.rewards, t + 1)
        assert r.actions.dtype == np.int64


def test_resume_adds_only_missing_demos(tmp_path, tiny_checkpoints):
    tiny_checkpoints(tmp_path / "ppo", GAME, (100, 200))
    first = generate_procgen_demonstrations(make_cfg(tmp_path, num_demos=3, num_held_out_demos=0))
    demo_dir = tmp_path / "demos"
    digest = {r.id: hashlib.sha256((demo_dir / r.file).read_bytes()).hexdigest() for r in first}
    second = generate_procgen_demonstrations(make_cfg(tmp_path, num_demos=6, num_held_out_demos=0))
    records = read_index(demo_dir)
    assert len(second) == 3 and records[:3] == first and records[3:] == second
    assert len({r.id for r in records}) == 6 and all(r.level_set == "train" for r in records)
    assert all(hashlib.sha256((demo_dir / r.file).read_bytes()).hexdigest() == digest[r.id] for r in first)
    assert Counter(r.checkpoint_step for r in records) == {100: 3, 200: 3}  # balance kept across runs
    old_obs = [load_demo(demo_dir, r).obs for r in first]
    for r in second:  # a round's seeds follow its first demo id: new episodes, not replays of the first run's
        obs = load_demo(demo_dir, r).obs
        assert not any(o.shape == obs.shape and (o == obs).all() for o in old_obs)
    assert generate_procgen_demonstrations(make_cfg(tmp_path, num_demos=6, num_held_out_demos=0)) == []
    assert read_index(demo_dir) == records


def test_same_seed_reproduces(tmp_path, tiny_checkpoints):
    tiny_checkpoints(tmp_path / "ppo", GAME, (100, 200))
    runs = [
        generate_procgen_demonstrations(
            make_cfg(tmp_path, demo_dir=str(tmp_path / d), num_demos=3, num_held_out_demos=0)
        )
        for d in ("a", "b")
    ]
    assert runs[0] == runs[1]
    for ra, rb in zip(*runs, strict=True):
        np.testing.assert_array_equal(load_demo(tmp_path / "a", ra).obs, load_demo(tmp_path / "b", rb).obs)


def test_noise_injection_records_levels(tmp_path, tiny_checkpoints):
    tiny_checkpoints(tmp_path / "ppo", GAME, (100, 200))
    new = generate_procgen_demonstrations(
        make_cfg(tmp_path, noise_levels=[0.0, 0.5, 1.0], num_held_out_demos=0, checkpoint_sampling="uniform")
    )
    assert Counter(r.noise for r in new) == {0.0: 2, 0.5: 2, 1.0: 2}
    assert {r.checkpoint_step for r in new} == {200}  # the newest checkpoint only


def test_checkpoint_of_another_game_refused_by_cli(tmp_path, tiny_checkpoints):
    tiny_checkpoints(tmp_path / "ppo", "coinrun", (100,))
    proc = subprocess.run(
        [
            sys.executable,
            "trex/reward_model.py",
            "demos",
            "--env_name",
            GAME,
            "--checkpoint_dir",
            str(tmp_path / "ppo" / "checkpoints"),
            "--demo_dir",
            str(tmp_path / "demos"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in proc.stderr
    assert "coinrun" in lines[0] and GAME in lines[0]
    assert not (tmp_path / "demos" / "index.csv").exists()


def test_missing_or_empty_checkpoint_dir_refused(tmp_path):
    with pytest.raises(UserError, match="not a folder"):
        generate_procgen_demonstrations(make_cfg(tmp_path))
    (tmp_path / "ppo" / "checkpoints").mkdir(parents=True)
    with pytest.raises(UserError, match="no step_"):
        generate_procgen_demonstrations(make_cfg(tmp_path))
    with pytest.raises(UserError, match="checkpoint not found"):
        generate_procgen_demonstrations(make_cfg(tmp_path, checkpoints=[str(tmp_path / "nope.pt")]))


def test_checkpoint_trained_on_other_levels_refused(tmp_path, tiny_checkpoints):
    (path,) = tiny_checkpoints(tmp_path / "ppo", GAME, (100,))
    state = torch.load(path, weights_only=True)
    state["config"].update(start_level=0, num_levels=500)  # held-out levels 20+ would be its training levels
    torch.save(state, path)
    with pytest.raises(UserError, match="trained on levels 0\\+500"):
        generate_procgen_demonstrations(make_cfg(tmp_path))
    assert not (tmp_path / "demos" / "index.csv").exists()


def test_demos_of_another_game_or_mode_are_refused_in_one_line():
    def record(game: str, mode: str) -> DemoRecord:
        return DemoRecord(
            id="train_000000",
            game=game,
            distribution_mode=mode,
            level_seed=0,
            level_set="train",
            level_range="0+1",
            checkpoint="c.pt",
            checkpoint_step=1,
            noise=0.0,
            length=3,
            ret=1.0,
            file="demos/x.npz",
        )

    check_game([record("coinrun", "easy")] * 2, "d", "coinrun", "easy", "fix it")
    check_game([], "d", "coinrun", "easy", "fix it")
    for game, mode in (("starpilot", "easy"), ("coinrun", "hard")):
        with pytest.raises(
            UserError,
            match=rf"^d holds demos of coinrun \(easy\), {game} \({mode}\), not "
            r"coinrun \(easy\); fix it$",
        ):
            check_game([record("coinrun", "easy"), record(game, mode)], "d", "coinrun", "easy", "fix it")


def test_training_demos_from_n_levels_or_a_fresh_level_each(tmp_path, tiny_checkpoints):
    tiny_checkpoints(tmp_path / "ppo", GAME, (100,))
    cfg = make_cfg(tmp_path, num_demos=6, num_held_out_demos=2, demo_num_levels=0, sweep_demo_levels=[2])
    generate_procgen_demonstrations(cfg)
    main, two = read_index(tmp_path / "demos"), read_index(tmp_path / "demos" / "levels_2")
    fresh = [r.level_seed for r in main if r.level_set in ("train", "new_episodes")]
    assert len(set(fresh)) == len(fresh) == 8 and min(fresh) >= 20 + 100_000  # fresh: beyond the held-out levels
    assert Counter(r.level_set for r in two) == {"train": 6, "new_episodes": 2}  # the held-out demos are shared
    assert {r.level_seed for r in two} <= {0, 1} and {r.level_range for r in two} == {"0+2"}
    with pytest.raises(
        UserError,
        match="training demos on levels \\[0, 50\\) would meet the held-out levels "
        "\\[20, 100,020\\); set held_out_start_level beyond them",
    ):
        make_cfg(tmp_path, demo_num_levels=50)
    with pytest.raises(UserError, match="holds train demos from levels 100020\\+1000000000, not 0\\+20"):
        generate_procgen_demonstrations(make_cfg(tmp_path, num_demos=7, num_held_out_demos=2))


def test_killed_generation_rerun_ends_as_an_uninterrupted_run(tmp_path, tiny_checkpoints):
    tiny_checkpoints(tmp_path / "ppo", GAME, (100, 200))
    args = [
        "--env_name",
        GAME,
        "--checkpoint_dir",
        str(tmp_path / "ppo" / "checkpoints"),
        "--num_demos",
        "12",
        "--num_held_out_demos",
        "3",
        "--num_envs",
        "3",
        "--max_episode_steps",
        "60",
        "--train_num_levels",
        "20",
        "--device",
        "cpu",
    ]
    whole = generate_procgen_demonstrations(
        make_cfg(tmp_path, num_demos=12, num_held_out_demos=3, demo_dir=str(tmp_path / "whole"))
    )
    cmd = [sys.executable, "trex/reward_model.py", "demos", *args, "--demo_dir", str(tmp_path / "killed")]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    index = tmp_path / "killed" / "index.csv"
    deadline = time.time() + 120
    while (
        (not index.is_file() or len(index.read_text().splitlines()) < 4)
        and proc.poll() is None
        and time.time() < deadline
    ):
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    cut = len(read_index(tmp_path / "killed"))
    assert 0 < cut < 18, "the run was not cut short; make it longer"
    rerun = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=180)
    assert rerun.returncode == 0, rerun.stderr
    killed = read_index(tmp_path / "killed")
    assert killed == whole  # the same rows in the same order, none twice
    for a, b in zip(killed, whole, strict=True):
        np.testing.assert_array_equal(load_demo(tmp_path / "killed", a).obs, load_demo(tmp_path / "whole", b).obs)
    assert not list((tmp_path / "killed").rglob(".*.tmp"))
