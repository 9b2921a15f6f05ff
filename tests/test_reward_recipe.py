"""The levers of the reward recipe (issue: a reward that learns the game, not the clock): time-aligned snippet pairs
by hand, the position-invariant `pooled` net, configs of runs from before a key existed, the validation levels'
figures in metrics.json, the inverse-dynamics loss (its transitions by hand, and a test that it learns), and a
learning test: on frames that show a clock, time-aligned pairs teach what pays."""

from __future__ import annotations

import csv
import dataclasses
import json

import numpy as np
import pytest
import torch

from toolkit.cli import UserError
from toolkit.config import diff_configs
from trex.config import TrexConfig
from trex.demos.store import Demo, DemoRecord, write_demos
from trex.demos.synthetic import as_written, marker_demos
from trex.reward.auxiliary import demo_transitions, transitions
from trex.reward.net import RewardNet
from trex.reward.pairs import concat_obs, create_training_data, label_figures
from trex.reward.table import figure_columns
from trex.reward.trainer import RewardTrainer


def _demo(k: int, rewards: list[float], level: int | None = None) -> Demo:
    n = len(rewards)
    level = k if level is None else level
    record = DemoRecord(f"d{k}", "starpilot", "easy", level, "train", "0+3", "c", 0, 0.0, n, float(sum(rewards)), "f")
    return Demo(record, np.zeros((n, 4, 4, 3), np.uint8), np.zeros(n, np.int64), np.array(rewards, np.float32))


def test_time_aligned_pairs_cover_the_same_time_steps_so_a_clock_scores_one_half():
    # a: reward 1 on every frame (return 10); b: reward 1 on frames 0-4 only (return 5); c: nothing (0, 20 frames)
    demos = [_demo(0, [1.0] * 10), _demo(1, [1.0] * 5 + [0.0] * 7), _demo(2, [0.0] * 20)]
    pairs = create_training_data(demos, 400, 4, 4, 1, True, np.random.default_rng(0), time_aligned=True)
    assert (pairs.start[:, 0] == pairs.start[:, 1]).all()
    shortest = np.minimum(*(np.array([10, 12, 20])[pairs.demo].T))
    assert (pairs.start[:, 0] + pairs.length <= shortest).all() and (pairs.length == 4).all()
    figures = label_figures(pairs, demos)
    assert figures["clock_accuracy"] == 0.5  # every pair starts both snippets at the same step
    # by hand: b's window from step s earns min(s+4, 5) - s (at least 0); a's always 4, c's always 0
    s = pairs.start[:, 0]
    b_return = np.clip(np.minimum(s + 4, 5) - s, 0, None)
    with_b = (pairs.demo == 1).any(1)
    ties = (with_b & (pairs.demo == 0).any(1) & (b_return == 4)) | (with_b & (pairs.demo == 2).any(1) & (b_return == 0))
    assert figures["ties"] == pytest.approx(ties.mean())
    assert figures["true_reward_accuracy"] == pytest.approx((~ties).mean() + 0.5 * ties.mean())
    assert figures["against_label"] == 0.0
    # the progress constraint's pairs, from the same demos, are ones a clock explains: b's windows start later than c's
    # never, a's later than c's often
    clocked = create_training_data(demos, 400, 4, 4, 1, True, np.random.default_rng(0))
    assert label_figures(clocked, demos)["clock_accuracy"] > 0.5


def test_same_level_pairs_pair_only_demos_of_one_level_and_are_refused_where_none_share_one():
    demos = [_demo(k, [float(k)] * 10, level=k % 2) for k in range(6)]  # levels 0, 1, 0, 1, 0, 1
    pairs = create_training_data(demos, 300, 4, 4, 1, True, np.random.default_rng(0), same_level=True)
    assert ((pairs.demo % 2)[:, 0] == (pairs.demo % 2)[:, 1]).all()
    assert len({tuple(sorted(p)) for p in pairs.demo.tolist()}) == 6  # every same-level pair of the six demos
    with pytest.raises(UserError, match="no two of these 3 demos share a level"):
        apart = [demos[0], demos[1], _demo(9, [2.0] * 10, level=5)]  # levels 0, 1, 5
        create_training_data(apart, 10, 4, 4, 1, True, np.random.default_rng(0), same_level=True)


def test_pooled_net_scores_a_sprite_the_same_wherever_it_is_and_fast_does_not():
    torch.manual_seed(0)
    frames = torch.zeros(2, 64, 64, 3, dtype=torch.uint8)
    frames[0, 24:28, 24:28] = 255  # the same sprite one cell (8 pixels) apart, both away from the borders' reach
    frames[1, 32:36, 24:28] = 255
    pooled, fast = RewardNet("pooled"), RewardNet("fast")
    with torch.no_grad():
        a, b = pooled(frames)
        assert a.item() == pytest.approx(b.item(), abs=1e-6)
        assert pooled(torch.zeros(1, 64, 64, 3, dtype=torch.uint8)).item() != pytest.approx(a.item(), abs=1e-6)
        c, d = fast(frames)
        assert c.item() != pytest.approx(d.item(), abs=1e-6)


def test_a_key_a_finished_run_predates_reads_as_its_default():
    now = {"time_aligned": False, "num_pairs": 10}
    defaults = {"time_aligned": False, "num_pairs": 5000}
    assert diff_configs({"num_pairs": 10}, now, (), defaults) == []
    assert diff_configs({"num_pairs": 10}, {**now, "time_aligned": True}, (), defaults) == ["time_aligned"]
    assert diff_configs({"num_pairs": 10}, now, ()) == ["time_aligned"]  # without defaults, as before


def _clock_demos(count: int, rng: np.random.Generator, level_set: str = "train") -> list[Demo]:
    """Marker demos whose frames also show a clock, a bar along the top that grows with time."""
    demos = marker_demos(count, rng, level_set, min_len=30, max_len=60)
    for d in demos:
        for t in range(len(d.obs)):
            d.obs[t, :3, : t + 1] = 200
    return demos


def test_time_aligned_pairs_teach_the_marker_not_the_clock(fit_reward_net):
    """Frames show a clock and a marker (reward 1 per marker frame). Trained on time-aligned pairs, the pooled net
    must rank unseen demos' time-aligned pairs nearly as well as the true reward does."""
    rng = np.random.default_rng(0)
    train, test = _clock_demos(16, rng), _clock_demos(16, rng, "held_out")
    cfg = TrexConfig(
        reward_net="pooled",
        time_aligned=True,
        num_pairs=800,
        min_snippet_length=10,
        max_snippet_length=20,
        frame_stride=2,
        learning_rate=3e-3,
        l1_reg=0.01,
        epochs=1,
    )
    net, trainer = fit_reward_net(cfg, train, 0)
    pairs = create_training_data(test, 400, 10, 20, 2, False, np.random.default_rng(1), time_aligned=True)
    frames, offsets = concat_obs(test)
    figures = label_figures(pairs, test, trainer.accuracy(frames, offsets, pairs))
    assert figures["clock_accuracy"] == 0.5
    assert figures["model_accuracy"] >= 0.9 * figures["true_reward_accuracy"], figures


def test_train_command_scores_the_validation_levels_and_their_clock_free_pairs(tmp_path):
    from trex.reward.fit import fit_and_evaluate, load_demo_sets

    rng = np.random.default_rng(4)
    demos = (
        marker_demos(12, rng, min_len=12, max_len=30)
        + marker_demos(6, rng, "new_episodes", min_len=12, max_len=30)
        + marker_demos(6, rng, "held_out", min_len=12, max_len=30)
        + marker_demos(8, rng, "val", min_len=12, max_len=30)
    )
    write_demos(tmp_path / "demos", as_written(demos))
    cfg = TrexConfig(
        demo_dir=str(tmp_path / "demos"),
        run_dir=str(tmp_path / "run"),
        held_out_start_level=1000,
        demo_num_levels=12,
        val_num_levels=8,
        num_val_demos=8,
        num_demos=12,
        num_pairs=40,
        min_snippet_length=4,
        max_snippet_length=8,
        eval_pairs=50,
        clock_free_validation=True,
        epochs=1,
        torch_threads=1,
    )
    cfg.env_name = "coinrun"
    metrics = fit_and_evaluate(cfg, load_demo_sets(cfg, tmp_path / "demos"), verbose=False)
    assert metrics["validation"]["n_demos"] == 8
    # clock-free validation pairs beside progress-constrained training pairs
    assert metrics["labels"]["val"]["clock_accuracy"] == 0.5
    aligned = metrics["labels"]["val_aligned"]
    assert aligned["clock_accuracy"] == 0.5 and aligned["pairs"] == 50
    row = figure_columns(json.loads((tmp_path / "run" / "metrics.json").read_text()))
    assert row["validation_centred_spearman"] == metrics["validation"]["centred"]["spearman"]
    assert row["labels_val_aligned_model_accuracy"] == metrics["labels"]["val_aligned"]["model_accuracy"]


def test_transitions_stop_at_each_demo_end_by_hand():
    data = transitions(np.array([0, 3]), np.array([3, 2]), np.array([4, 5, 6, 7, 8]))
    assert data.frame.tolist() == [0, 1, 3] and data.actions.tolist() == [4, 5, 7]
    with pytest.raises(UserError, match="outside Procgen's 0-14"):
        transitions(np.array([0]), np.array([2]), np.array([0, 15]))


def test_transitions_of_demos_apart_in_the_frames_take_each_demos_own_actions_by_hand():
    # demos of 3 and 2 frames at offsets 0 and 10 (another demo's frames between): frames 0, 1, 10
    data = transitions(np.array([0, 10]), np.array([3, 2]), np.array([4, 5, 6, 7, 8]))
    assert data.frame.tolist() == [0, 1, 10] and data.actions.tolist() == [4, 5, 7]
    # the labelled demos first, the unlabelled after: the transitions of demos 0 and 2, skipping demo 1
    demos = [_demo(k, [0.0] * n) for k, n in enumerate([3, 4, 2])]
    for k, d in enumerate(demos):
        d.obs[:] = 10 * k + np.arange(len(d.obs))[:, None, None, None]  # frame t of demo k shows 10k + t
        d.actions[:] = 5 * k + np.arange(len(d.obs))  # the action on it: 5k + t
    frames, offsets = concat_obs(demos)
    data = demo_transitions(demos, offsets, [0, 2])
    assert frames[data.frame, 0, 0, 0].tolist() == [0, 1, 20]
    assert data.actions.tolist() == [0, 1, 10]


def test_unlabelled_demos_must_come_from_levels_no_model_is_judged_on(tmp_path):
    from trex.reward.fit import load_demo_sets

    rng = np.random.default_rng(5)

    def on_levels(demos: list[Demo], first: int) -> list[Demo]:
        for k, d in enumerate(demos):
            d.record = dataclasses.replace(d.record, level_seed=first + k)
        return demos

    main = on_levels(marker_demos(4, rng, min_len=12, max_len=20), 0)
    main += on_levels(marker_demos(3, rng, "held_out", min_len=12, max_len=20), 1000)
    main += on_levels(marker_demos(3, rng, "val", min_len=12, max_len=20), 2000)
    write_demos(tmp_path / "demos", as_written(main))
    write_demos(tmp_path / "many", as_written(on_levels(marker_demos(5, rng, min_len=12, max_len=20), 100)))
    write_demos(tmp_path / "leaky", as_written(on_levels(marker_demos(3, rng, min_len=12, max_len=20), 2001)))
    # levels 1049-1050: held-out levels no stored demo plays, still ones a policy is judged on
    write_demos(tmp_path / "unseen", as_written(on_levels(marker_demos(2, rng, min_len=12, max_len=20), 1049)))
    cfg = TrexConfig(
        demo_dir=str(tmp_path / "demos"),
        held_out_start_level=1000,
        held_out_num_levels=100,
        demo_num_levels=4,
        val_start_level=2000,
        val_num_levels=3,
        inverse_dynamics=1.0,
    )
    cfg.env_name = "coinrun"
    cfg.dynamics_demo_dir = str(tmp_path / "many")
    sets = load_demo_sets(cfg, tmp_path / "demos")
    assert [d.record.level_seed for d in sets.unlabelled] == [100, 101, 102, 103, 104] and len(sets.train) == 4
    assert load_demo_sets(cfg, tmp_path / "demos", unlabelled=False).unlabelled == []
    refusals = {
        "leaky": r"2 of its levels are validation or held-out levels \(e.g. 2001\)",
        "unseen": r"2 of its levels are validation or held-out levels \(e.g. 1049\)",
        "demos": "holds the training demos themselves",
        "none": "no training demos in",
    }
    for folder, message in refusals.items():
        cfg.dynamics_demo_dir = str(tmp_path / folder)
        with pytest.raises(UserError, match=message):
            load_demo_sets(cfg, tmp_path / "demos")
    with pytest.raises(UserError, match="'dynamics_demo_dir': its frames feed the inverse-dynamics loss"):
        TrexConfig(dynamics_demo_dir=str(tmp_path / "many")).check()


def test_inverse_dynamics_teaches_the_encoder_which_action_moved_the_frame(tmp_path):
    """The action on frame t puts a bright square in one of four screen columns of frame t+1; trained with the
    inverse-dynamics loss beside the ranking loss on 6 demos' transitions, the head must name the action far above
    chance (0.25) on them and on the 2 demos it never saw, as metrics.json and the training log report it."""
    from trex.reward.fit import inverse_dynamics_figures

    rng = np.random.default_rng(0)
    demos = marker_demos(8, rng, min_len=40, max_len=60)
    for d in demos:
        d.actions[:] = rng.integers(0, 4, len(d.actions))
        d.obs[1:, 48:, :] = 0
        for t, a in enumerate(d.actions[:-1]):
            d.obs[t + 1, 48:, 16 * a : 16 * a + 16] = 255
    cfg = TrexConfig(
        num_pairs=640, min_snippet_length=8, max_snippet_length=16, learning_rate=3e-3, epochs=1, eval_interval=160
    )
    cfg.inverse_dynamics = 1.0
    frames, offsets = concat_obs(demos)
    data = demo_transitions(demos, offsets, list(range(6)))
    torch.manual_seed(0)
    trainer = RewardTrainer(RewardNet("fast"), cfg, torch.device("cpu"), tmp_path, verbose=False)
    pairs = create_training_data(demos[:6], cfg.num_pairs, 8, 16, 2, True, np.random.default_rng(1))
    trainer.fit(frames, offsets, pairs, None, np.random.default_rng(2), data)
    assert trainer.inverse is not None
    with torch.no_grad():
        right = trainer.inverse.loss(trainer.net, frames, data, 400, np.random.default_rng(3))[1].item()
    assert right > 0.8, right
    unseen = inverse_dynamics_figures(trainer, frames, offsets, demos, 6, 0)
    assert unseen is not None and unseen["val_acc"] > 0.8 and unseen["most_common_action"] < 0.5, unseen
    logged = [float(r["inverse_acc"]) for r in csv.DictReader((tmp_path / "train_log.csv").open())]
    assert len(logged) == 4 and logged[-1] > 0.8 and logged[-1] > logged[0] + 0.3, logged


def test_the_oracle_regresses_each_snippets_true_return_over_the_frames_the_net_sees_by_hand():
    """Two demos whose frame t earns reward t; snippets of 5 frames at stride 2 from frame 1 of demo 0 (frames 1, 3,
    5: true return 9) and frame 2 of demo 1 (frames 2, 4, 6: 12). The oracle's loss is the squared error of the
    net's snippet returns against 9 and 12, and its fit refuses to run without the truth."""
    from trex.reward.loss import true_return_loss
    from trex.reward.pairs import SnippetPairs

    demos = marker_demos(2, np.random.default_rng(0), min_len=10, max_len=10)
    for d in demos:
        d.rewards = np.arange(10, dtype=np.float32)
    frames, offsets = concat_obs(demos)
    truth = np.concatenate([d.rewards for d in demos])
    pairs = SnippetPairs(np.array([[0, 1]]), np.array([[1, 2]]), np.array([5]), np.array([1]), 2, 0.0)
    idx = np.array([0])
    torch.manual_seed(0)
    trainer = RewardTrainer(RewardNet("fast"), TrexConfig(supervision="true_returns"), torch.device("cpu"))
    returns = trainer.snippet_returns(frames, offsets, pairs, idx)[0]
    loss = trainer.batch_loss(frames, offsets, pairs, idx, None, truth)[0]
    by_hand = ((returns[0, 0, 0] - 9) ** 2 + (returns[0, 0, 1] - 12) ** 2) / 2
    assert loss.item() == pytest.approx(by_hand.item(), rel=1e-5)
    assert true_return_loss(torch.tensor([[[9.0, 12.0]]]), torch.tensor([[9.0, 12.0]])).item() == 0.0
    with pytest.raises(ValueError, match="true reward"):
        trainer.fit(frames, offsets, pairs, None, np.random.default_rng(0))


def test_the_oracle_gives_each_frame_the_reward_of_the_step_that_led_to_it_by_hand():
    from trex.reward.fit import trainer_inputs

    demos = [_demo(0, [1.0, 2.0, 3.0]), _demo(1, [4.0, 5.0])]
    offsets = concat_obs(demos)[1]
    assert trainer_inputs(TrexConfig(), demos, offsets, 2, 2) == (None, None)  # T-REX never reads a reward
    truth = trainer_inputs(TrexConfig(supervision="true_returns"), demos, offsets, 2, 2)[1]
    assert truth is not None and truth.tolist() == [0.0, 1.0, 2.0, 0.0, 4.0]


def test_the_oracle_learns_the_marker_from_pairs_a_clock_explains(tmp_path):
    """On clock-friendly pairs (progress constraint on) of demos whose frames show a clock and a marker, the oracle
    (each snippet's true return) must rank unseen demos' clock-free pairs nearly as well as the true reward does:
    the figure the rank labels' models are judged by, with the labels' weakness removed."""
    rng = np.random.default_rng(0)
    train, test = _clock_demos(16, rng), _clock_demos(16, rng, "held_out")
    cfg = TrexConfig(
        supervision="true_returns", num_pairs=800, min_snippet_length=10, max_snippet_length=20, frame_stride=2
    )
    cfg.learning_rate, cfg.epochs = 3e-3, 1
    frames, offsets = concat_obs(train)
    pairs = create_training_data(train, cfg.num_pairs, 10, 20, 2, True, np.random.default_rng(1))
    torch.manual_seed(0)
    trainer = RewardTrainer(RewardNet("pooled"), cfg, torch.device("cpu"), tmp_path, verbose=False)
    truth = np.concatenate([d.rewards for d in train])
    trainer.fit(frames, offsets, pairs, None, np.random.default_rng(2), None, truth)
    aligned = create_training_data(test, 400, 10, 20, 2, False, np.random.default_rng(3), time_aligned=True)
    test_frames, test_offsets = concat_obs(test)
    figures = label_figures(aligned, test, trainer.accuracy(test_frames, test_offsets, aligned))
    assert figures["clock_accuracy"] == 0.5
    assert figures["model_accuracy"] >= 0.9 * figures["true_reward_accuracy"], figures
