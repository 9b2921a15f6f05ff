"""run_episodes, summarize_returns and checkpoint_returns: exact episode counts, unbiased quotas, returns that add up,
determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from baseline_agent.checkpoint import load_policy
from baseline_agent.envs import NUM_ACTIONS, OBS_SHAPE, LevelSet
from baseline_agent.evaluation import (
    StepView,
    _choose_actions,
    checkpoint_returns,
    default_levels,
    episode_quotas,
    run_episodes,
    summarize_returns,
)
from baseline_agent.models import Policy
from toolkit.cli import UserError

GAME = "chaser"  # random-policy episodes of ~50-300 steps with many small rewards
LEVELS = LevelSet(1000, 500)


def tiny_policy() -> Policy:
    torch.manual_seed(0)
    return Policy(NUM_ACTIONS, [4, 8, 8], 32, OBS_SHAPE).eval()


def mean_pixel(obs: torch.Tensor) -> torch.Tensor:
    return obs.float().mean((1, 2, 3))


def test_quotas_are_even_and_sum_to_the_request():
    assert episode_quotas(7, 3).tolist() == [3, 2, 2]
    assert episode_quotas(4, 4).tolist() == [1, 1, 1, 1]


def test_exact_count_and_each_slot_keeps_its_first_episodes():
    seven = run_episodes(None, GAME, "easy", LEVELS, 7, 3, seed=5)
    six = run_episodes(None, GAME, "easy", LEVELS, 6, 3, seed=5)
    assert len(seven) == 7 and len(six) == 6
    # Ordered by slot then time; quotas (3,2,2) and (2,2,2): each slot's episodes are its env's first ones,
    # whatever the other slots did, so no preference for episodes that happen to end early.
    assert seven[0:2] == six[0:2] and seven[3:5] == six[2:4] and seven[5:7] == six[4:6]
    assert all(not ep["truncated"] for ep in seven)


def test_the_policy_reads_only_the_slots_still_playing_and_their_actions_match_a_full_batch():
    policy, seen = tiny_policy(), []
    policy.register_forward_hook(lambda module, inputs, output: seen.append(len(inputs[0])))
    obs = torch.randint(0, 256, (6, *OBS_SHAPE), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    playing = np.array([True, False, True, True, False, True])
    full = _choose_actions(policy, obs, False, torch.Generator().manual_seed(1), np.ones(6, bool))
    part = _choose_actions(policy, obs, False, torch.Generator().manual_seed(1), playing)
    assert seen == [6, 4] and (part[playing] == full[playing]).all()
    seven = run_episodes(policy, GAME, "easy", LEVELS, 7, 3, seed=5)  # slots 1 and 2 idle while slot 0 plays on
    six = run_episodes(policy, GAME, "easy", LEVELS, 6, 3, seed=5)
    assert seven[0:2] == six[0:2] and seven[3:5] == six[2:4] and seven[5:7] == six[4:6]


def test_same_seed_same_episodes_other_seed_differs():
    policy = tiny_policy()
    a = run_episodes(policy, GAME, "easy", LEVELS, 5, 2, seed=3)
    b = run_episodes(policy, GAME, "easy", LEVELS, 5, 2, seed=3)
    c = run_episodes(policy, GAME, "easy", LEVELS, 5, 2, seed=4)
    assert a == b
    assert a != c


def test_returns_and_learned_returns_are_sums_over_the_episode_frames():
    seen_by_reward: list[np.ndarray] = []

    def reward_fn(obs: torch.Tensor) -> torch.Tensor:
        seen_by_reward.append(obs.numpy().copy())
        return mean_pixel(obs)

    steps: list[StepView] = []
    episodes = run_episodes(
        tiny_policy(), GAME, "easy", LEVELS, 5, 2, seed=1, reward_fn=reward_fn, on_step=steps.append
    )
    assert len(steps) == len(seen_by_reward)
    # Learned reward t is scored on obs_t, the frame action t was chosen on.
    assert all(np.array_equal(v.obs, o) for v, o in zip(steps, seen_by_reward, strict=True))

    per_slot: list[list[dict]] = [[], []]
    for view in steps:
        for i in np.flatnonzero(view.recording):
            if view.length[i] == 1:
                per_slot[i].append({"rewards": [], "frames": []})
            per_slot[i][-1]["rewards"].append(float(view.reward[i]))
            per_slot[i][-1]["frames"].append(float(view.obs[i].astype(np.float64).mean()))
    recomputed = [ep for slot in per_slot for ep in slot]
    assert len(recomputed) == len(episodes) == 5
    for ep, rec in zip(episodes, recomputed, strict=True):
        assert ep["length"] == len(rec["rewards"])
        assert ep["ret"] == pytest.approx(sum(rec["rewards"]), abs=1e-5)
        assert ep["learned_ret"] == pytest.approx(sum(rec["frames"]), rel=1e-5)
    assert any(ep["ret"] != 0 for ep in episodes)


def test_default_levels_are_unseen_in_training():
    train = {"start_level": 0, "num_levels": 50}
    levels = default_levels(train, None, 100_000)
    assert levels == LevelSet(50, 100_000)
    episodes = run_episodes(None, GAME, "easy", levels, 6, 3, seed=0)
    assert all(ep["level_seed"] >= 50 for ep in episodes)
    assert default_levels(train, 7, 3) == LevelSet(7, 3)
    with pytest.raises(UserError):
        default_levels({"start_level": 0, "num_levels": 0}, None, 100)


def test_max_steps_truncates_and_still_counts_exactly():
    episodes = run_episodes(None, GAME, "easy", LEVELS, 6, 3, seed=2, max_steps=20)
    assert len(episodes) == 6
    assert all(ep["length"] <= 20 for ep in episodes)
    assert all(ep["truncated"] == (ep["length"] == 20) for ep in episodes)
    assert any(ep["truncated"] for ep in episodes)


def test_summarize_returns_by_hand():
    s = summarize_returns([1.0, 2.0, 3.0, 4.0])
    std = math.sqrt(5 / 3)
    half = 3.182446305284263 * std / 2  # Student t(0.975, 3 dof) * std / sqrt(4)
    assert (s["n"], s["mean"], s["median"], s["min"], s["max"]) == (4, 2.5, 2.5, 1.0, 4.0)
    assert s["std"] == pytest.approx(std)
    assert (s["ci95_low"], s["ci95_high"]) == pytest.approx((2.5 - half, 2.5 + half))
    one = summarize_returns([3.0])
    assert one["std"] == 0.0 and one["ci95_low"] is None
    with pytest.raises(ValueError):
        summarize_returns([])


def test_checkpoint_returns_plays_the_checkpoint_or_random_and_refuses_another_game(tmp_path, tiny_checkpoints):
    (path,) = tiny_checkpoints(tmp_path, GAME, (100,))
    played = checkpoint_returns(path, GAME, "easy", LEVELS, 6, seed=2)
    policy, _ = load_policy(path)
    by_hand = run_episodes(policy, GAME, "easy", LEVELS, 6, 20, seed=2, num_threads=1)
    assert played == summarize_returns([e["ret"] for e in by_hand])
    random = run_episodes(None, GAME, "easy", LEVELS, 6, 20, seed=2, num_threads=1)
    assert checkpoint_returns(None, GAME, "easy", LEVELS, 6, seed=2) == summarize_returns([e["ret"] for e in random])
    with pytest.raises(UserError, match="plays chaser, not coinrun"):
        checkpoint_returns(path, "coinrun", "easy", LEVELS, 6)
