"""Snippet pairs: labels, the progress constraint, frame subsampling and label noise on hand-built demos."""

from __future__ import annotations

import numpy as np
import pytest

from toolkit.cli import UserError
from trex.demos.store import Demo, DemoRecord
from trex.reward.pairs import concat_obs, create_training_data


def demo(k: int, rewards: list[float]) -> Demo:
    """A demo whose frame t is filled with the value 10*k + t, so gathered frames name their demo and step."""
    n = len(rewards)
    obs = (10 * k + np.arange(n, dtype=np.uint8))[:, None, None, None] * np.ones((1, 2, 2, 1), dtype=np.uint8)
    record = DemoRecord(f"d{k}", "coinrun", "easy", k, "train", "0+9", "c", 0, 0.0, n, float(sum(rewards)), f"d{k}.npz")
    return Demo(record, obs, np.zeros(n, dtype=np.int64), np.array(rewards, dtype=np.float32))


def sides(pairs):
    """(better demo, worse demo, better start, worse start) of every pair."""
    rows = np.arange(len(pairs))
    return (
        pairs.demo[rows, pairs.label],
        pairs.demo[rows, 1 - pairs.label],
        pairs.start[rows, pairs.label],
        pairs.start[rows, 1 - pairs.label],
    )


DEMOS = [demo(0, [0.0] * 9), demo(1, [1.0] * 7), demo(2, [1.0, 1.0] * 4), demo(3, [0.5] * 14)]  # returns 0, 7, 8, 7


def test_labels_point_to_the_better_demo_and_equal_returns_never_pair():
    pairs = create_training_data(DEMOS, 500, 3, 6, 1, True, np.random.default_rng(0))
    returns = np.array([d.record.ret for d in DEMOS])
    better, worse, _, _ = sides(pairs)
    assert (returns[better] > returns[worse]).all()
    assert not ({tuple(sorted(p)) for p in pairs.demo.tolist()} & {(1, 3)})  # demos 1 and 3 both return 7
    assert set(pairs.label.tolist()) == {0, 1}  # the better snippet is on either side


def test_progress_constraint_and_lengths():
    lengths = np.array([len(d.obs) for d in DEMOS])
    pairs = create_training_data(DEMOS, 500, 3, 6, 1, True, np.random.default_rng(1))
    better, worse, b_start, w_start = sides(pairs)
    assert (b_start >= w_start).all()
    assert ((pairs.length >= 3) & (pairs.length <= 6)).all()
    assert (b_start + pairs.length <= lengths[better]).all() and (w_start + pairs.length <= lengths[worse]).all()
    free = create_training_data(DEMOS, 500, 3, 6, 1, False, np.random.default_rng(1))
    _, _, b_free, w_free = sides(free)
    assert (b_free < w_free).any()  # without the constraint the better snippet sometimes starts earlier


def test_frame_index_subsamples_the_snippet_window():
    pairs = create_training_data(DEMOS, 50, 5, 5, 2, True, np.random.default_rng(2))
    frames, offsets = concat_obs(DEMOS)
    flat, segment = pairs.frame_index(np.array([0, 7]), offsets)
    assert segment.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]  # 5 frames at stride 2 -> 3 per snippet
    got = frames[flat, 0, 0, 0].reshape(4, 3)
    for row, (n, side) in enumerate([(0, 0), (0, 1), (7, 0), (7, 1)]):
        d, s = pairs.demo[n, side], pairs.start[n, side]
        assert got[row].tolist() == [10 * d + s, 10 * d + s + 2, 10 * d + s + 4]
    assert pairs.frames_per_pair() == 6


def test_label_noise_by_hand():
    # Better demo A (return 4) earns its reward late, worse demo B (return 3) early. Snippets of 5 frames: B's
    # window is all of B (return 3); A's window [s, s+5) returns 0, 0, 1, 2, 3, 4 for s = 0..5, so a pair is
    # mislabelled exactly when A's snippet starts at 3 or earlier (s = 4 ties, which is not noise).
    a, b = demo(0, [0, 0, 0, 0, 0, 0, 1, 1, 1, 1]), demo(1, [1, 1, 1, 0, 0])
    pairs = create_training_data([a, b], 3000, 5, 5, 1, True, np.random.default_rng(3))
    better, _, b_start, w_start = sides(pairs)
    assert (better == 0).all() and (w_start == 0).all()
    assert pairs.label_noise == pytest.approx(np.mean(b_start <= 3))
    assert 0.6 < pairs.label_noise < 0.73  # 4 of the 6 equally likely starts


def test_too_few_distinct_returns_is_a_user_error():
    with pytest.raises(UserError, match="distinct return"):
        create_training_data([demo(0, [1.0, 0.0]), demo(1, [0.0, 1.0])], 10, 1, 2, 1, True, np.random.default_rng(0))


def test_rank_by_noise_prefers_less_noise_whatever_the_return():
    import dataclasses

    # D-REX: the noisier demo here has the higher return, but rank_by="noise" must still call it the worse one
    quiet = dataclasses.replace(demo(0, [0.0] * 9), record=dataclasses.replace(demo(0, [0.0] * 9).record, noise=0.0))
    noisy_base = demo(1, [1.0] * 9)
    noisy = dataclasses.replace(noisy_base, record=dataclasses.replace(noisy_base.record, noise=0.5))
    pairs = create_training_data([quiet, noisy], 200, 3, 6, 1, True, np.random.default_rng(4), rank_by="noise")
    better, worse, _, _ = sides(pairs)
    assert (better == 0).all() and (worse == 1).all()
    assert pairs.label_noise == 1.0  # every label disagrees with the true rewards of its snippets
    with pytest.raises(UserError, match="distinct noise"):
        create_training_data([quiet, quiet], 10, 3, 6, 1, True, np.random.default_rng(0), rank_by="noise")
