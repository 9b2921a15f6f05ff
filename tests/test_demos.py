"""Step 2: demonstration generation (trex/demos.py) on tiny random-policy checkpoints, CPU only."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from baseline_agent.envs import NUM_ACTIONS, OBS_SHAPE, Episode, LevelSet, held_out_levels
from baseline_agent.models import Policy
from toolkit.cli import UserError
from toolkit.config import build_config, load_yaml
from trex.config import TrexConfig
from trex.demo_store import DemoRecord, check_game, load_demo, load_demos, read_index
from trex.demos import (
    Demonstrator,
    DemoWriter,
    Source,
    choose_sources,
    generate_procgen_demonstrations,
    roll_out,
)

REPO = Path(__file__).resolve().parents[1]
GAME = "starpilot"  # random play both ends episodes and scores within 60 steps


def make_cfg(tmp_path: Path, **kw) -> TrexConfig:
    values = {"env_name": GAME, "checkpoint_dir": str(tmp_path / "ppo" / "checkpoints"),
              "demo_dir": str(tmp_path / "demos"), "num_demos": 6, "num_test_demos": 3, "num_envs": 3,
              "max_episode_steps": 60, "train_num_levels": 20, "device": "cpu", **kw}
    return build_config(TrexConfig, values)


@pytest.fixture(scope="module")
def generated(tmp_path_factory, tiny_checkpoints):
    """One generation run shared by the read-only checks: 3 checkpoints, 6 train and 3 test demos."""
    tmp = tmp_path_factory.mktemp("gen")
    tiny_checkpoints(tmp / "ppo", GAME, (100, 200, 300))
    cfg = make_cfg(tmp)
    return cfg, generate_procgen_demonstrations(cfg)


def test_level_sets_disjoint(generated):
    cfg, new = generated
    train = LevelSet(cfg.train_start_level, cfg.train_num_levels)
    test = held_out_levels(train, cfg.test_num_levels)
    assert test.start_level >= train.start_level + train.num_levels
    records = read_index(cfg.demo_dir)
    assert records == new and Counter(r.level_set for r in records) == {"train": 6, "test": 3}
    assert all(0 <= r.level_seed < 20 for r in records if r.level_set == "train")
    assert all(r.level_seed >= 20 and not train.contains(r.level_seed) for r in records if r.level_set == "test")


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
    for level_set, per_ckpt in (("train", 2), ("test", 1)):
        steps = Counter(r.checkpoint_step for r in new if r.level_set == level_set)
        assert steps == {100: per_ckpt, 200: per_ckpt, 300: per_ckpt}


def test_choose_sources_balances_existing_counts():
    rng = np.random.default_rng(0)
    picks = choose_sources([Source(0), Source(1), Source(2)], [3, 0, 1], 5, rng, stratified=True)
    assert Counter(picks) == {1: 3, 2: 2}  # counts become 3, 3, 3
    uniform = choose_sources([Source(0), Source(1)], [0, 0], 1000, rng, stratified=False)
    assert 400 < Counter(uniform)[0] < 600


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


def test_roll_out_frames_rewards_cap_and_round_trip(tmp_path):
    """Frame t is the frame action t was chosen on, reward t follows it; a capped episode is cut, not resumed."""
    env = ScriptedEnv([[3, 12], [12, 2]])  # episodes of 12 steps exceed the cap of 5
    torch.manual_seed(0)
    policies = [Policy(NUM_ACTIONS, [4, 8, 8], 32, OBS_SHAPE).eval() for _ in range(2)]
    jobs = [Source(0), Source(1), Source(0, noise=1.0), Source(1)]
    cfg = make_cfg(tmp_path)
    demonstrators = [Demonstrator(f"ckpt{k}.pt", 10 * k, p, {}) for k, p in enumerate(policies)]
    writer = DemoWriter(cfg, "train", jobs, demonstrators, first_id=0, done=0, total=len(jobs))
    roll_out(env, policies, jobs, 5, False, np.random.default_rng(0), torch.device("cpu"), writer)
    writer.flush(0)
    demos = load_demos(cfg.demo_dir, "train")
    # slot 0 plays jobs 0 (3 steps) then 2 (5 of 7, cut); slot 1 plays job 1 (5 of 12, cut), then job 3
    # from its next episode start (2 steps) - never the remainder of the cut one.
    got = sorted((d.record.level_seed, d.record.length, d.record.checkpoint_step, d.record.noise) for d in demos)
    assert got == [(0, 3, 0, 0.0), (1, 5, 0, 1.0), (100, 5, 10, 0.0), (101, 2, 10, 0.0)]
    for d in demos:
        t = np.arange(d.record.length)
        assert (d.obs[:, 0, 0, 0] == t).all() and (d.obs == d.obs[:, :1, :1, :1]).all()
        np.testing.assert_array_equal(d.rewards, t + 1)
        assert d.record.ret == (t + 1).sum() and d.actions.dtype == np.int64
    assert len({d.record.id for d in demos}) == 4


def test_resume_adds_only_missing_demos(tmp_path, tiny_checkpoints):
    tiny_checkpoints(tmp_path / "ppo", GAME, (100, 200))
    first = generate_procgen_demonstrations(make_cfg(tmp_path, num_demos=3, num_test_demos=0))
    demo_dir = tmp_path / "demos"
    digest = {r.id: hashlib.sha256((demo_dir / r.file).read_bytes()).hexdigest() for r in first}
    second = generate_procgen_demonstrations(make_cfg(tmp_path, num_demos=6, num_test_demos=0))
    records = read_index(demo_dir)
    assert len(second) == 3 and records[:3] == first and records[3:] == second
    assert len({r.id for r in records}) == 6 and all(r.level_set == "train" for r in records)
    assert all(hashlib.sha256((demo_dir / r.file).read_bytes()).hexdigest() == digest[r.id] for r in first)
    assert Counter(r.checkpoint_step for r in records) == {100: 3, 200: 3}  # balance kept across runs
    old_obs = [load_demo(demo_dir, r).obs for r in first]
    for r in second:  # fresh seeds: new episodes, not replays of the first run's
        obs = load_demo(demo_dir, r).obs
        assert not any(o.shape == obs.shape and (o == obs).all() for o in old_obs)
    assert generate_procgen_demonstrations(make_cfg(tmp_path, num_demos=6, num_test_demos=0)) == []
    assert read_index(demo_dir) == records


def test_same_seed_reproduces(tmp_path, tiny_checkpoints):
    tiny_checkpoints(tmp_path / "ppo", GAME, (100, 200))
    runs = [generate_procgen_demonstrations(make_cfg(tmp_path, demo_dir=str(tmp_path / d), num_demos=3,
                                                     num_test_demos=0)) for d in ("a", "b")]
    assert runs[0] == runs[1]
    for ra, rb in zip(*runs, strict=True):
        np.testing.assert_array_equal(load_demo(tmp_path / "a", ra).obs, load_demo(tmp_path / "b", rb).obs)


def test_noise_injection_records_levels(tmp_path, tiny_checkpoints):
    tiny_checkpoints(tmp_path / "ppo", GAME, (100, 200))
    new = generate_procgen_demonstrations(make_cfg(tmp_path, noise_levels=[0.0, 0.5, 1.0], num_test_demos=0,
                                                   checkpoint_sampling="uniform"))
    assert Counter(r.noise for r in new) == {0.0: 2, 0.5: 2, 1.0: 2}
    assert {r.checkpoint_step for r in new} == {200}  # the newest checkpoint only


def test_checkpoint_of_another_game_refused_by_cli(tmp_path, tiny_checkpoints):
    tiny_checkpoints(tmp_path / "ppo", "coinrun", (100,))
    proc = subprocess.run([sys.executable, "trex/reward_model.py", "demos", "--env_name", GAME,
                           "--checkpoint_dir", str(tmp_path / "ppo" / "checkpoints"),
                           "--demo_dir", str(tmp_path / "demos")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
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
        return DemoRecord(id="train_000000", game=game, distribution_mode=mode, level_seed=0, level_set="train",
                          checkpoint="c.pt", checkpoint_step=1, noise=0.0, length=3, ret=1.0, file="demos/x.npz")

    check_game([record("coinrun", "easy")] * 2, "d", "coinrun", "easy", "fix it")
    check_game([], "d", "coinrun", "easy", "fix it")
    for game, mode in (("starpilot", "easy"), ("coinrun", "hard")):
        with pytest.raises(UserError, match=rf"^d holds demos of coinrun \(easy\), {game} \({mode}\), not "
                                            r"coinrun \(easy\); fix it$"):
            check_game([record("coinrun", "easy"), record(game, mode)], "d", "coinrun", "easy", "fix it")
