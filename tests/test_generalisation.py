"""The levers and figures for a reward that generalises across levels: augmentations (by construction and in
learning), the baselines beyond episode length (time alone, partial Spearman given length, within-level Spearman,
held-out snippet accuracy) by hand, validation levels of their own, and members trained on their own pairs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy import stats

from toolkit.cli import UserError
from toolkit.config import build_config
from trex.config import TrexConfig, demo_levels, held_out, val_levels
from trex.demos.synthetic import marker_demos
from trex.reward.augment import AUGMENTATIONS, augment
from trex.reward.evaluation import (
    TrainingProfile,
    evaluate_demos,
    evaluate_returns,
    partial_spearman,
    predict_rewards,
    spearman_difference_ci,
    within_level,
)
from trex.reward.pairs import concat_obs, create_training_data
from trex.reward.trainer import RewardTrainer


def _snippets(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Three snippets of 4 frames, every frame of a snippet the same image, the first two snippets the same image."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    frames = torch.from_numpy(np.concatenate([np.repeat(images[k][None], 4, 0) for k in (0, 0, 1)]))
    return frames, torch.repeat_interleave(torch.arange(3), 4)


@pytest.mark.parametrize("names", [[a] for a in AUGMENTATIONS] + [list(AUGMENTATIONS)])
def test_an_augmentation_keeps_dtype_and_shape_changes_pixels_alike_within_a_snippet_and_is_seeded(names):
    frames, segment = _snippets()
    out = augment(frames, segment, names, torch.Generator().manual_seed(0))
    assert out.dtype == torch.uint8 and out.shape == frames.shape
    assert (out != frames).float().mean() > 0.3  # most pixels move
    for k in range(3):  # one draw per snippet: its (identical) frames stay identical
        snippet = out[segment == k]
        assert torch.equal(snippet, snippet[:1].expand_as(snippet))
    assert not torch.equal(out[0], out[4])  # the same image in two snippets gets two draws
    again = augment(frames, segment, names, torch.Generator().manual_seed(0))
    other = augment(frames, segment, names, torch.Generator().manual_seed(1))
    assert torch.equal(out, again) and not torch.equal(out, other)


def test_shift_moves_the_image_by_at_most_the_pad_and_repeats_the_edge():
    frames = torch.zeros(1, 64, 64, 3, dtype=torch.uint8)
    frames[0, 30, 30] = 255
    seen = set()
    for seed in range(40):
        out = augment(frames, torch.zeros(1, dtype=torch.long), ["shift"], torch.Generator().manual_seed(seed))
        y, x = torch.nonzero(out[0, :, :, 0])[0].tolist()
        assert abs(y - 30) <= 4 and abs(x - 30) <= 4 and int(out.sum()) == 3 * 255
        seen.add((y, x))
    assert len(seen) > 10
    edge = torch.arange(64, dtype=torch.uint8)[None, :, None, None].expand(1, 64, 64, 3).contiguous()
    out = augment(edge, torch.zeros(1, dtype=torch.long), ["shift"], torch.Generator().manual_seed(3))
    rows = out[0, :, 0, 0].tolist()
    assert rows == sorted(rows) and rows[0] in range(5) and set(np.diff(rows)) <= {0, 1}


def test_time_baseline_partial_and_within_level_spearman_by_hand():
    # Training demos' rewards: mean by time step [1, 2, 3] (only one demo reaches the third), 9 over 5 frames
    profile = TrainingProfile.of([np.array([1.0, 2.0]), np.array([1.0, 2.0, 3.0])])
    np.testing.assert_allclose(profile.by_time, [1.0, 2.0, 3.0])
    assert profile.offset == pytest.approx(9 / 5)
    # length 2 -> 1 + 2; length 5 -> 1 + 2 + 3 + offset + offset (past the longest training demo)
    np.testing.assert_allclose(profile.time_returns(np.array([2, 5, 0])), [3.0, 6.0 + 2 * 9 / 5, 0.0])

    true = np.array([1.0, 4.0, 2.0, 5.0, 3.0, 7.0])
    pred = np.array([2.0, 3.0, 1.0, 6.0, 4.0, 5.0])
    lengths = np.array([10.0, 30.0, 20.0, 40.0, 60.0, 50.0])
    r = lambda a, b: stats.spearmanr(a, b)[0]
    by_hand = (r(true, pred) - r(true, lengths) * r(pred, lengths)) / np.sqrt(
        (1 - r(true, lengths) ** 2) * (1 - r(pred, lengths) ** 2)
    )
    assert partial_spearman(true, pred, lengths) == pytest.approx(by_hand)
    assert partial_spearman(true, lengths, lengths) is None  # a prediction that is length knows nothing more

    seeds = np.array([1, 1, 1, 2, 2, 2])
    got = within_level(true, pred, seeds)
    assert got["levels"] == 2
    assert got["spearman"] == pytest.approx((r(true[:3], pred[:3]) + r(true[3:], pred[3:])) / 2)
    assert within_level(true, pred, np.arange(6))["spearman"] is None  # no level has 3 demos


def test_evaluate_returns_reports_every_baseline_and_a_length_only_prediction_beats_none_of_them():
    rng = np.random.default_rng(0)
    lengths = rng.integers(50, 500, 80).astype(np.float64)
    true = 0.01 * lengths + rng.normal(size=80)
    profile = TrainingProfile(0.5, np.full(100, 0.5))
    block = evaluate_returns(true, 0.5 * lengths, lengths, profile, np.repeat(np.arange(8), 10))
    assert block["spearman"] == pytest.approx(block["length_baseline"]["spearman"])
    assert block["spearman"] == pytest.approx(block["time_baseline"]["spearman"])
    assert block["centred"]["spearman"] is None  # nothing is left once the training offset is removed
    assert block["partial_spearman"]["value"] is None and block["offset"]["shift"] == pytest.approx(0.0)
    assert block["within_level"]["model"]["levels"] == 8


def _layout(**keys) -> TrexConfig:
    base = {"train_num_levels": 0, "held_out_start_level": 1_000_000, "held_out_num_levels": 25, "demo_num_levels": 8}
    return build_config(TrexConfig, {**base, **keys})


def test_validation_levels_are_disjoint_from_training_demo_and_held_out_levels():
    cfg = _layout(val_num_levels=20, sweep_demo_levels=[32, 0])
    val = val_levels(cfg)
    assert val.num_levels == 20
    for other in (held_out(cfg), demo_levels(cfg), demo_levels(cfg, 32), demo_levels(cfg, 0)):
        assert not val.overlaps(other)
    with pytest.raises(UserError, match="val_start_level"):
        _layout(val_num_levels=20, val_start_level=1_000_010)  # inside the held-out levels
    with pytest.raises(UserError, match="val_start_level"):
        _layout(val_num_levels=20, val_start_level=5)  # inside the training demos' 8 levels
    with pytest.raises(UserError, match="augment_consistency"):
        _layout(augment_consistency=0.1)


LEARN = {
    "num_pairs": 800,
    "min_snippet_length": 8,
    "max_snippet_length": 20,
    "batch_size": 32,
    "learning_rate": 3e-3,
    "l1_reg": 0.05,
    "epochs": 1,
}


@pytest.mark.parametrize(
    "levers",
    [
        {"augment": ["shift", "colour"], "augment_consistency": 0.1},
        {"ensemble_size": 2, "ensemble_resample": True},
    ],
    ids=["shift+colour+consistency", "resampled-ensemble"],
)
def test_reward_net_still_learns_to_rank_unseen_marker_demos_with_each_lever(levers, fit_reward_net):
    """(A random convolution may turn the bright marker dark: on these demos it learns in 2 epochs of 800 pairs on
    some seeds, not others, so it is checked by construction above and measured on real demos in results/.)"""
    rng = np.random.default_rng(0)
    train, test = marker_demos(16, rng), marker_demos(16, rng, "held_out")
    net, trainer = fit_reward_net(TrexConfig(**LEARN, **levers), train)
    metrics = evaluate_demos(net, test, "cpu", TrainingProfile.of(predict_rewards(net, train, "cpu"))).figures
    assert metrics["spearman"] > 0.8 or metrics["pair_accuracy"] > 0.8, metrics
    assert metrics["partial_spearman"]["value"] > 0.5  # it knows the marker, not only the length
    pairs = create_training_data(test, 200, 8, 20, 2, False, np.random.default_rng(1))
    assert trainer.accuracy(*concat_obs(test), pairs) > 0.75


def test_resampled_members_see_different_pairs(monkeypatch, fit_reward_net):
    train = marker_demos(6, np.random.default_rng(1), min_len=10, max_len=20)
    cfg = TrexConfig(num_pairs=64, min_snippet_length=4, max_snippet_length=8, batch_size=16, epochs=1, ensemble_size=2)
    seen: list[np.ndarray] = []
    original = RewardTrainer.step

    def spy(self, frames, offsets, pairs, idx, *rest):
        seen.append(np.array(idx))
        return original(self, frames, offsets, pairs, idx, *rest)

    monkeypatch.setattr(RewardTrainer, "step", spy)
    fit_reward_net(dataclasses.replace(cfg, ensemble_resample=True), train)
    resampled = seen[:]
    seen.clear()
    fit_reward_net(cfg, train)
    assert all(idx.shape == (2, 16) for idx in resampled) and any((i[0] != i[1]).any() for i in resampled)
    assert all(idx.ndim == 1 for idx in seen)


def test_spearman_difference_ci_is_paired_and_by_hand():
    rng = np.random.default_rng(0)
    true = rng.normal(size=50)
    baseline = true + rng.normal(size=50)
    better = np.stack([true + 0.1 * rng.normal(size=50), true + 0.2 * rng.normal(size=50)])
    got = spearman_difference_ci(true, better, baseline, np.random.default_rng(1))
    by_hand = np.mean([stats.spearmanr(true, p)[0] for p in better]) - stats.spearmanr(true, baseline)[0]
    assert got["difference"] == pytest.approx(by_hand)
    assert 0 < got["ci95"][0] < by_hand < got["ci95"][1]  # clearly better: the interval excludes 0
    same = spearman_difference_ci(true, baseline, baseline, np.random.default_rng(1))
    assert same["difference"] == 0 and same["ci95"] == [0.0, 0.0]  # paired: identical predictions differ by 0
