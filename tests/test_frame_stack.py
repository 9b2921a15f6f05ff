"""The `frame_stack` lever (issue: a reward that learns the game, not the clock): frames stacked by hand at a demo's
start and across demos, a stacked model's file read back and refused by step 4, the keys it cannot go with, and a
learning test: where what pays is a motion, which no single frame shows, a stacked net learns it and a one-frame net
cannot."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from toolkit.cli import UserError
from trex.config import TrexConfig
from trex.demos.store import Demo, DemoRecord
from trex.reward.evaluation import frame_rewards
from trex.reward.net import RewardNet, load_reward_model, save_reward_model, stack_frames
from trex.reward.pairs import concat_obs, create_training_data, label_figures

SIDE = 8  # the marker's side in pixels, and its step


def test_a_frame_is_stacked_after_the_frames_before_it_and_its_demo_start_repeats():
    frames = np.arange(6, dtype=np.uint8).reshape(6, 1, 1, 1)  # two demos: frames 0-2 and 3-5, each pixel its index
    got = stack_frames(frames, np.arange(6), np.array([0, 0, 0, 3, 3, 3]), 3)
    assert got.shape == (6, 1, 1, 3)
    assert got[:, 0, 0].tolist() == [[0, 0, 0], [0, 0, 1], [0, 1, 2], [3, 3, 3], [3, 3, 4], [3, 4, 5]]
    assert (stack_frames(frames, np.array([4, 1]), np.array([3, 0]), 1) == frames[[4, 1]]).all()


def test_a_stacked_model_scores_an_episode_as_its_stacks_and_step_4_refuses_it(tmp_path):
    from trex.policy.learned_reward import load_reward_source

    torch.manual_seed(0)
    net = RewardNet("fast", 1, (64, 64, 3), 2).eval()
    episode = np.random.default_rng(0).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    by_hand = np.stack([np.concatenate([episode[max(t - 1, 0)], episode[t]], -1) for t in range(5)])
    with torch.no_grad():
        expected = net(torch.from_numpy(by_hand)).double().numpy()
    assert frame_rewards(net, episode, "cpu") == pytest.approx(expected, abs=1e-6)
    path = tmp_path / "reward_model.pt"
    save_reward_model(path, net, {"env_name": "starpilot", "distribution_mode": "easy"})
    loaded, meta = load_reward_model(path)
    assert meta["frame_stack"] == 2 and loaded.frame_stack == 2
    assert frame_rewards(loaded, episode, "cpu") == pytest.approx(expected, abs=1e-6)
    with pytest.raises(UserError, match="reads 2 stacked frames"):
        load_reward_source(str(path), "starpilot", "easy")


@pytest.mark.parametrize(
    ("keys", "message"),
    [({"inverse_dynamics": 1.0}, "inverse_dynamics"), ({"augment": ["shift", "colour"]}, "colour and conv")],
)
def test_frame_stack_is_refused_beside_a_key_that_reads_single_frames(keys, message):
    with pytest.raises(UserError, match=message):
        TrexConfig(frame_stack=2, **keys).check()
    TrexConfig(frame_stack=2, augment=["shift"]).check()  # a shift moves every stacked frame alike


def _motion_demos(count: int, rng: np.random.Generator, level_set: str = "train") -> list[Demo]:
    """A marker that steps one side right or left each frame (wrapping round), right with a probability of the
    demo's own; a step right pays 1. Every frame alone shows the marker anywhere alike: only two frames show which
    way it went."""
    demos = []
    for k in range(count):
        length = int(rng.integers(30, 61))
        right = rng.random(length) < rng.random()
        right[0] = False  # the first frame has no step before it
        cells = 64 // SIDE
        x = (rng.integers(cells) + np.cumsum(np.where(right, 1, -1) * (np.arange(length) > 0))) % cells
        y = rng.integers(cells)
        obs = rng.integers(0, 60, size=(length, 64, 64, 3), dtype=np.uint8)
        for t in range(length):
            obs[t, y * SIDE : (y + 1) * SIDE, x[t] * SIDE : (x[t] + 1) * SIDE] = 255
        rewards = right.astype(np.float32)
        record = DemoRecord(f"{level_set}{k}", "starpilot", "easy", k, level_set, f"0+{count}", "s", 0, 0.0, length,
                            float(rewards.sum()), f"{level_set}{k}.npz")  # fmt: skip
        demos.append(Demo(record, obs, np.zeros(length, np.int64), rewards))
    return demos


def test_a_stacked_net_learns_a_motion_that_no_single_frame_shows(fit_reward_net):
    """On time-aligned pairs (no clock), a 2-frame net ranks unseen demos' pairs nearly as well as the true reward
    does; the one-frame net, trained alike, stays near chance."""
    rng = np.random.default_rng(0)
    train, test = _motion_demos(16, rng), _motion_demos(16, rng, "held_out")
    pairs = create_training_data(test, 400, 10, 20, 1, False, np.random.default_rng(1), time_aligned=True)
    frames, offsets = concat_obs(test)
    accuracy = {}
    for depth in (1, 2):
        cfg = TrexConfig(
            frame_stack=depth,
            time_aligned=True,
            num_pairs=800,
            min_snippet_length=10,
            max_snippet_length=20,
            frame_stride=1,
            learning_rate=3e-3,
            l1_reg=0.01,
            epochs=1,
        )
        net, trainer = fit_reward_net(cfg, train, 0)
        accuracy[depth] = trainer.accuracy(frames, offsets, pairs)
    figures = label_figures(pairs, test, accuracy[2])
    assert figures["clock_accuracy"] == 0.5
    assert accuracy[2] >= 0.9 * figures["true_reward_accuracy"], (accuracy, figures)
    assert accuracy[1] <= 0.65, (accuracy, figures)
