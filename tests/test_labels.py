"""What the labels can teach and figures that cannot flatter: pair ceilings and the clock, level-clustered intervals,
bounded seed intervals and the report's reading by sign, each against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from trex.demos.store import Demo, DemoRecord
from trex.reward.evaluation import (
    bootstrap_ci,
    resample_groups,
    seed_interval,
    spearman_difference_ci,
    standardised_ensemble,
    within_checkpoint,
)
from trex.reward.pairs import SnippetPairs, create_training_data, label_figures


def _demo(rewards: list[float], level: int = 0) -> Demo:
    n = len(rewards)
    record = DemoRecord(
        f"d{level}", "starpilot", "easy", level, "train", "0+9", "c", 0, 0.0, n, float(sum(rewards)), "d.npz"
    )
    return Demo(record, np.zeros((n, 2, 2, 1), np.uint8), np.zeros(n, np.int64), np.array(rewards, np.float32))


# Demo 0 (return 1) pays at frame 5; demo 1 (return 3) at frames 1, 6 and 8.
DEMOS = [_demo([0, 0, 0, 0, 0, 1, 0, 0, 0, 0]), _demo([0, 1, 0, 0, 0, 0, 1, 0, 1, 0])]


def test_label_figures_by_hand():
    # Four pairs of 3-frame windows, the better demo (1) on side `label`:
    # 0: demo 1 at 6 (return 2) vs demo 0 at 4 (return 1): ordered as labelled; the better starts later (clock right)
    # 1: demo 1 at 2 (return 0) vs demo 0 at 3 (return 1): against the label; the better starts earlier (clock wrong)
    # 2: demo 1 at 2 (return 0) vs demo 0 at 0 (return 0): a tie; the better starts later (clock right)
    # 3: demo 1 at 5 (return 1) vs demo 0 at 5 (return 1): a tie; equal starts (clock half)
    pairs = SnippetPairs(
        demo=np.array([[0, 1], [1, 0], [0, 1], [1, 0]]),
        start=np.array([[4, 6], [2, 3], [0, 2], [5, 5]]),
        length=np.array([3, 3, 3, 3]),
        label=np.array([1, 0, 1, 0]),
        frame_stride=1,
        label_noise=0.0,
    )
    got = label_figures(pairs, DEMOS, model_accuracy=0.75)
    assert got == {
        "pairs": 4,
        "ties": 0.5,
        "against_label": 0.25,
        "true_reward_accuracy": 0.25 + 0.5 * 0.5,
        "clock_accuracy": (2 + 0.5) / 4,
        "model_accuracy": 0.75,
    }
    assert label_figures(None, DEMOS)["pairs"] == 0 and label_figures(None, DEMOS)["ties"] is None


def test_label_noise_of_created_pairs_is_the_share_against_the_label_and_the_progress_constraint_favours_a_clock():
    rng = np.random.default_rng(0)
    demos = [_demo([float(i % 3 == 0)] * 60, level=i) for i in range(6)] + [_demo([1.0] * 30 + [0.0] * 30, 9)]
    free = create_training_data(demos, 2000, 10, 20, 1, False, rng)
    constrained = create_training_data(demos, 2000, 10, 20, 1, True, rng)
    assert free.label_noise == label_figures(free, demos)["against_label"]
    # The progress constraint puts the better demo's snippet no earlier than the worse one's: a clock never loses.
    rows = np.arange(2000)
    equal = np.mean(constrained.start[rows, constrained.label] == constrained.start[rows, 1 - constrained.label])
    assert label_figures(constrained, demos)["clock_accuracy"] == pytest.approx(1.0 - 0.5 * equal)
    assert label_figures(free, demos)["clock_accuracy"] == pytest.approx(0.5, abs=0.04)


def test_resample_groups_draw_whole_levels_then_episodes_within_them():
    clusters = np.array([7, 7, 7, 3, 3, 5])  # levels of 3, 2 and 1 episodes
    groups = resample_groups(len(clusters), np.random.default_rng(0), 200, clusters)
    assert sum(len(g) for g in groups) == 200
    for rows in groups:
        for row in rows:
            levels, counts = np.unique(clusters[row], return_counts=True)
            size = {7: 3, 3: 2, 5: 1}
            # each level appears a whole number of times its own size: its episodes come in full draws
            assert all(c % size[int(lv)] == 0 for lv, c in zip(levels, counts, strict=True))
    plain = resample_groups(6, np.random.default_rng(0), 200)
    assert len(plain) == 1 and plain[0].shape == (200, 6)


def test_a_clustered_interval_is_wider_when_episodes_of_a_level_are_alike():
    rng = np.random.default_rng(1)
    level = np.repeat(np.arange(8), 10)  # 8 levels, 10 episodes each
    effect = rng.normal(size=8)[level]  # the level sets both the return and the prediction
    true = effect + 0.1 * rng.normal(size=80)
    pred = effect + 0.1 * rng.normal(size=80)
    width = lambda ci: ci["spearman"][1] - ci["spearman"][0]
    plain = bootstrap_ci(true, pred, np.random.default_rng(2))
    clustered = bootstrap_ci(true, pred, np.random.default_rng(2), clusters=level)
    assert width(clustered) > 1.5 * width(plain)
    diff = spearman_difference_ci(true, pred, np.arange(80.0), np.random.default_rng(3), clusters=level)
    plain_diff = spearman_difference_ci(true, pred, np.arange(80.0), np.random.default_rng(3))
    assert diff["difference"] == plain_diff["difference"]
    assert diff["ci95"][1] - diff["ci95"][0] > plain_diff["ci95"][1] - plain_diff["ci95"][0]


def test_a_seed_interval_stays_within_its_bounds():
    values = [0.9, -0.5, 0.99]  # a Student-t interval of these leaves [-1, 1]
    plain = seed_interval(values)
    assert plain["ci95_low"] < -1 and plain["ci95_high"] > 1
    fisher = seed_interval(values, (-1.0, 1.0))
    z = np.arctanh(values)
    half = 4.302652729911275 * z.std(ddof=1) / np.sqrt(3)  # t(0.975, 2)
    assert fisher["ci95_low"] == pytest.approx(np.tanh(z.mean() - half))
    assert fisher["ci95_high"] == pytest.approx(np.tanh(z.mean() + half))
    assert -1 <= fisher["ci95_low"] < fisher["mean"] < fisher["ci95_high"] <= 1
    share = seed_interval([0.58, 0.2, 0.95], (0.0, 1.0))
    assert 0 <= share["ci95_low"] < share["ci95_high"] <= 1 and share["mean"] == pytest.approx(0.5766666)


def _figures(train: tuple, test: tuple, length: float = 0.1, diff: tuple | None = None) -> dict:
    spread = lambda m, lo, hi: {"mean": m, "ci95_low": lo, "ci95_high": hi}
    held_out = {"spearman": spread(*test), "length_spearman": spread(length, None, None)}
    if diff is not None:
        held_out["centred_minus_length"] = spread(*diff)
    return {"new_episodes": {"spearman": spread(*train)}, "held_out": held_out}


@pytest.mark.parametrize(
    "train, test, words",
    [
        ((-0.5, -0.7, -0.3), (0.1, -0.2, 0.4), "ranks new episodes of the levels it was trained on backwards"),
        ((0.1, -0.2, 0.4), (0.5, 0.3, 0.7), "does not reliably rank even new episodes"),
        ((0.69, 0.5, 0.8), (-0.21, -0.35, -0.03), "but episodes of unseen levels backwards (Spearman -0.21"),
        ((0.6, 0.4, 0.8), (0.1, -0.1, 0.3), "but not episodes of unseen levels"),
        ((0.8, 0.7, 0.9), (0.3, 0.1, 0.5), "it generalises in part"),
        ((0.5, 0.3, 0.7), (0.45, 0.2, 0.6), "it generalises across levels"),
    ],
)
def test_the_reading_follows_the_sign_of_every_interval(train, test, words):
    from trex.pipeline.study_report import reading

    text = reading(_figures(train, test))
    assert words in text
    if test[2] < 0:
        assert "generalises in part" not in text and "ranks episodes of unseen levels too" not in text


@pytest.mark.parametrize(
    "diff, verdict",
    [((0.1, 0.02, 0.2), "beats episode length"), ((-0.3, -0.4, -0.1), "falls short"), ((0.0, -0.1, 0.1), "cannot be")],
)
def test_the_reading_of_centred_less_length_follows_its_interval(diff, verdict):
    from trex.pipeline.study_report import reading

    assert verdict in reading(_figures((0.6, 0.4, 0.8), (0.5, 0.3, 0.7), 0.2, diff))


def test_within_checkpoint_spearman_by_hand():
    # Checkpoint a's demos are ranked exactly, b's backwards; across checkpoints the prediction knows only which
    # checkpoint played (b's demos all predicted above a's, and they return more).
    true = np.array([1.0, 2.0, 3.0, 10.0, 11.0, 12.0, 5.0])
    pred = np.array([1.0, 2.0, 3.0, 9.0, 8.0, 7.0, 0.0])
    checkpoints = np.array(["a", "a", "a", "b", "b", "b", "c"])  # c has one demo: not counted
    got = within_checkpoint(true, pred, checkpoints)
    assert got == {"spearman": 0.0, "checkpoints": 2}  # (1 + -1) / 2


def test_a_saliency_map_lights_the_pixels_the_reward_reads_and_nothing_else():
    import torch

    from trex.reward.saliency import saliency_map

    class OnePixel(torch.nn.Module):  # the reward is the red value of pixel (10, 20), twice the green of (3, 4)
        frame_stack = 1

        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            return obs[:, 10, 20, 0] + 0.5 * obs[:, 3, 4, 1]

    frames = np.random.default_rng(0).integers(0, 256, (300, 64, 64, 3), dtype=np.uint8)
    got = saliency_map(OnePixel(), frames, np.zeros(300, np.int64), "cpu")  # type: ignore[arg-type]
    assert got.shape == (64, 64) and got[10, 20] == 1.0 and got[3, 4] == 0.5
    got[10, 20] = got[3, 4] = 0.0
    assert not got.any()


def test_a_standardised_ensemble_weighs_each_model_alike_whatever_its_scale():
    lengths = np.array([10.0, 20.0, 40.0])
    # Model 0: offset 1 per frame, std 1; model 1 the same ranking at 100 times the scale.
    small = np.array([12.0, 19.0, 45.0])  # centred: 2, -1, 5
    large = 100 * small
    got = standardised_ensemble(np.stack([small, large]), lengths, np.array([1.0, 100.0]), np.array([1.0, 100.0]))
    np.testing.assert_allclose(got, [2.0, -1.0, 5.0])
    backwards = np.array([8.0, 21.0, 35.0])  # centred: -2, 1, -5, the opposite ranking at the same scale
    np.testing.assert_allclose(
        standardised_ensemble(np.stack([small, backwards]), lengths, np.ones(2), np.ones(2)), [0.0, 0.0, 0.0]
    )


def test_the_seeds_ensemble_averages_centred_returns_so_errors_that_cancel_leave_the_true_order_by_hand():
    from trex.pipeline.study_report import ensemble_figures

    true = np.arange(1.0, 9.0)
    lengths = true[::-1].copy()  # the longest episode pays least: length's Spearman is -1
    error = np.array(
        [2.5, -2.5, 0, 0, 2.5, -2.5, 0, 0]
    )  # swaps ranks 1-2 and 5-6 in one seed, the other way in the other

    def block(sign: float, offset: float) -> dict:
        predicted = true + sign * error + offset * lengths  # centred on `offset`: true + sign * error
        returns = {
            "true": list(true),
            "predicted": list(predicted),
            "length": list(lengths),
            "level_seed": list(range(8)),
        }
        return {"returns": returns, "offset": {"train": offset}}

    figures = ensemble_figures([block(1.0, 2.0), block(-1.0, 1.0)])  # uncentred, length would rank them
    assert figures["ensemble_centred"]["mean"] == pytest.approx(1.0)  # each seed alone ranks two pairs wrong
    assert figures["ensemble_minus_length"]["mean"] == pytest.approx(2.0)
    assert figures["ensemble_minus_length"]["ci95_low"] == pytest.approx(2.0)
