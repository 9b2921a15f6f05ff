"""The shipped demonstrators (results/level_generalisation's StarPilot and FruitBot, results/procgen16's other games)
load as checkpoints, outplay random actions on held-out levels, and roll out into demonstrations with step 2's own
code; fp16 weights act as their fp32 source does."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from baseline_agent.checkpoint import evenly_spaced, export_weights, list_checkpoints, load_policy
from baseline_agent.envs import LevelSet
from baseline_agent.evaluation import outplays_random
from toolkit.config import build_config
from trex.config import TrexConfig
from trex.demos.generate import generate_procgen_demonstrations
from trex.demos.store import read_index

RESULT = Path(__file__).resolve().parents[1] / "results" / "level_generalisation"
SHIPPED = RESULT / "demonstrators" / "checkpoints"  # StarPilot's
PROCGEN16 = {p.name: p / "checkpoints" for p in (RESULT.parent / "procgen16" / "demonstrators").iterdir()}
GAMES = {"starpilot": SHIPPED, "fruitbot": RESULT / "demonstrators_fruitbot" / "checkpoints", **PROCGEN16}


@pytest.mark.parametrize("game", sorted(GAMES))
def test_the_shipped_demonstrators_load_and_the_last_outplays_random_actions_on_held_out_levels(game):
    found = list_checkpoints(GAMES[game])
    assert len(found) >= 5 and all(p.stat().st_size < 1_000_000 for p in found)  # weights only
    assert sum(p.stat().st_size for p in found) < 10_000_000  # at most 10 MB per game
    if game in PROCGEN16:  # results/procgen16: 6-10 checkpoints, at most 3 MB, spread from near-random to the last
        assert 6 <= len(found) <= 10 and sum(p.stat().st_size for p in found) <= 3_000_000
        steps = [load_policy(p)[1]["step"] for p in found]
        assert steps[0] <= steps[-1] / 10
    policy, meta = load_policy(found[-1])
    assert meta["model_spec"]["env_name"] == game and meta["config"]["num_levels"] == 0
    better, mine, chance = outplays_random(found[-1], game, "easy", LevelSet(1_000_000, 25))  # held-out levels
    assert better, (mine, chance)


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


def test_fp16_weights_act_as_their_fp32_source_and_checkpoints_are_spread_evenly(tmp_path):
    source = list_checkpoints(SHIPPED)[-1]  # fp32
    half = export_weights(source, tmp_path, half=True)
    assert half.stat().st_size < 0.6 * source.stat().st_size
    frames = torch.randint(0, 256, (64, 64, 64, 3), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    with torch.no_grad():
        logits = [load_policy(path)[0](frames)[0] for path in (source, half)]
    assert (logits[0].argmax(-1) == logits[1].argmax(-1)).float().mean() > 0.95
    assert torch.allclose(torch.softmax(logits[0], -1), torch.softmax(logits[1], -1), atol=0.02)
    paths = [Path(f"step_{i}.pt") for i in range(20)]
    assert [p.name for p in evenly_spaced(paths, 4)] == ["step_0.pt", "step_6.pt", "step_13.pt", "step_19.pt"]
    assert evenly_spaced(paths, None) == paths and evenly_spaced(paths[:3], 8) == paths[:3]


def test_a_stopped_run_ships_nothing_and_says_why_in_one_line(tmp_path, tiny_checkpoints):
    from baseline_agent.checkpoint import ship
    from toolkit.cli import UserError

    run = tmp_path / "run"
    tiny_checkpoints(run, "coinrun", [64, 128])
    (run / "progress.csv").write_text("step\n")
    with pytest.raises(UserError, match="is not a finished run .no learning_curve.png, config.yaml, summary.json"):
        ship(run, tmp_path / "out", 2, half=True)
    assert not (tmp_path / "out").exists()  # refused before anything was written
