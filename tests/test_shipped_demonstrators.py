"""The demonstrators shipped with results/level_generalisation load as checkpoints, outplay random actions on
held-out levels, and roll out into demonstrations with step 2's own code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from baseline_agent.checkpoint import list_checkpoints, load_policy
from baseline_agent.envs import LevelSet
from baseline_agent.evaluation import run_episodes
from toolkit.config import build_config
from trex.config import TrexConfig
from trex.demos.generate import generate_procgen_demonstrations
from trex.demos.store import read_index

RESULT = Path(__file__).resolve().parents[1] / "results" / "level_generalisation"
SHIPPED = RESULT / "demonstrators" / "checkpoints"  # StarPilot's
GAMES = {"starpilot": SHIPPED, "fruitbot": RESULT / "demonstrators_fruitbot" / "checkpoints"}


@pytest.mark.parametrize("game", sorted(GAMES))
def test_the_shipped_demonstrators_load_and_the_last_outplays_random_actions_on_held_out_levels(game):
    found = list_checkpoints(GAMES[game])
    assert len(found) >= 5 and all(p.stat().st_size < 1_000_000 for p in found)  # weights only
    assert sum(p.stat().st_size for p in found) < 10_000_000  # at most 10 MB per game
    policy, meta = load_policy(found[-1])
    assert meta["model_spec"]["env_name"] == game and meta["config"]["num_levels"] == 0
    levels = LevelSet(1_000_000, 25)  # the result's held-out levels
    trained = run_episodes(policy, game, "easy", levels, 32, 16, seed=0, num_threads=1)
    random = run_episodes(None, game, "easy", levels, 32, 16, seed=0, num_threads=1)
    assert np.mean([e["ret"] for e in trained]) > np.mean([e["ret"] for e in random]) + 0.5


def test_the_shipped_demonstrators_roll_out_into_ranked_demos(tmp_path):
    cfg = build_config(
        TrexConfig,
        {
            "env_name": "starpilot",
            "train_num_levels": 0,
            "demo_num_levels": 8,
            "held_out_start_level": 1_000_000,
            "held_out_num_levels": 25,
            "checkpoint_dir": str(SHIPPED),
            "num_demos": 6,
            "num_held_out_demos": 2,
            "max_episode_steps": 40,
            "num_envs": 6,
            "demo_dir": str(tmp_path / "demos"),
        },
    )
    generate_procgen_demonstrations(cfg)
    records = read_index(tmp_path / "demos")
    assert sorted(r.level_set for r in records) == ["held_out"] * 2 + ["new_episodes"] * 2 + ["train"] * 6
    assert {r.checkpoint for r in records} <= {str(p) for p in list_checkpoints(SHIPPED)}
    assert all(r.level_seed < 8 for r in records if r.level_set == "train")
