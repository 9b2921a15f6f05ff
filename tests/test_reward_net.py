"""RewardNet shapes and scaling, and reward_model.pt: a weights_only round trip and clear errors for bad files."""

from __future__ import annotations

import pytest
import torch

from baseline_agent.models import ConvSequence
from toolkit.cli import UserError
from trex.reward.net import ARCHITECTURES, RewardNet, load_reward_model, save_reward_model


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_forward_is_the_mean_of_members_per_frame(architecture):
    torch.manual_seed(0)
    net = RewardNet(architecture, ensemble_size=3)
    obs = torch.randint(0, 256, (5, 64, 64, 3), dtype=torch.uint8)
    with torch.no_grad():
        out, members = net(obs), net.member_rewards(obs)
        single = net(obs[2:3])
    assert out.shape == (5,) and members.shape == (3, 5)
    torch.testing.assert_close(out, members.mean(0))
    torch.testing.assert_close(single, out[2:3], rtol=1e-4, atol=1e-5)  # per frame: batch-mates do not matter


@pytest.mark.parametrize(
    "architecture, brightest",
    [("fast", 1.0), ("trex_atari", 1.0), ("study2020", 255.0), ("pooled", 1.0), ("impala", 1.0)],
)
def test_inputs_are_scaled_as_each_architecture_expects(architecture, brightest):
    net = RewardNet(architecture)
    first = net.members[0][0][0]
    seen = []
    first.register_forward_hook(lambda m, inp, out: seen.append(inp[0]))
    net(torch.full((1, 64, 64, 3), 255, dtype=torch.uint8))
    assert seen[0].dtype == torch.float32 and seen[0].max().item() == brightest


def test_study2020_is_the_2020_studys_network():
    """conv 3x3/32, max-pool 4/2, leaky ReLU (twice), conv 3x3/32, leaky ReLU, fc 3872 -> 64 -> 1."""
    trunk, fc1, _, fc2 = RewardNet("study2020").members[0]
    kinds = [(type(m).__name__, getattr(m, "kernel_size", None), getattr(m, "stride", None)) for m in trunk]
    assert kinds == [
        ("Conv2d", (3, 3), (1, 1)),
        ("MaxPool2d", 4, 2),
        ("LeakyReLU", None, None),
        ("Conv2d", (3, 3), (1, 1)),
        ("MaxPool2d", 4, 2),
        ("LeakyReLU", None, None),
        ("Conv2d", (3, 3), (1, 1)),
        ("LeakyReLU", None, None),
        ("Flatten", None, None),
    ]
    assert [m.out_channels for m in trunk if hasattr(m, "out_channels")] == [32, 32, 32]
    assert (fc1.in_features, fc1.out_features, fc2.out_features) == (3872, 64, 1)


def test_impala_is_the_procgen_papers_trunk_with_the_reward_head():
    """Three conv-maxpool-two-residual-block sequences of 16/32/32 channels (64 -> 8 pixels), fc 2048 -> 64 -> 1."""
    trunk, fc1, _, fc2 = RewardNet("impala").members[0]
    sequences = [m for m in trunk if isinstance(m, ConvSequence)]
    assert [m.conv.out_channels for m in sequences] == [16, 32, 32]
    assert (fc1.in_features, fc1.out_features, fc2.out_features) == (32 * 8 * 8, 64, 1)


def test_round_trip_with_weights_only(tmp_path):
    torch.manual_seed(1)
    net = RewardNet("study2020", ensemble_size=2)
    path = tmp_path / "reward_model.pt"
    save_reward_model(path, net, {"env_name": "fruitbot", "distribution_mode": "hard"})
    raw = torch.load(path, weights_only=True)
    assert raw["architecture"] == "study2020" and raw["ensemble_size"] == 2 and raw["obs_shape"] == [64, 64, 3]
    loaded, meta = load_reward_model(path, "cpu")
    assert meta["env_name"] == "fruitbot" and meta["distribution_mode"] == "hard" and "state_dict" not in meta
    assert not loaded.training
    obs = torch.randint(0, 256, (4, 64, 64, 3), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(loaded(obs), net(obs))


def test_bad_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_reward_model(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file at all")
    with pytest.raises(UserError, match="cannot read"):
        load_reward_model(garbage)
    foreign = tmp_path / "foreign.pt"
    torch.save({"model": {}, "step": 3}, foreign)
    with pytest.raises(UserError, match="not a T-REX reward model"):
        load_reward_model(foreign)
    good = tmp_path / "good.pt"
    save_reward_model(good, RewardNet("fast"), {"env_name": "coinrun", "distribution_mode": "easy"})
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:2000])
    with pytest.raises(UserError):
        load_reward_model(truncated)
