"""RewardNet shapes and scaling, and reward_model.pt: a weights_only round trip and clear errors for bad files."""

from __future__ import annotations

import pytest
import torch

from toolkit.cli import UserError
from trex.reward_net import RewardNet, load_reward_model, save_reward_model


@pytest.mark.parametrize("architecture", ["fast", "trex2020"])
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


def test_inputs_are_scaled_to_unit_range():
    net = RewardNet("fast")
    first = net.members[0][0][0]
    seen = []
    first.register_forward_hook(lambda m, inp, out: seen.append(inp[0]))
    net(torch.full((1, 64, 64, 3), 255, dtype=torch.uint8))
    assert seen[0].dtype == torch.float32 and seen[0].max().item() == 1.0


def test_round_trip_with_weights_only(tmp_path):
    torch.manual_seed(1)
    net = RewardNet("trex2020", ensemble_size=2)
    path = tmp_path / "reward_model.pt"
    save_reward_model(path, net, {"env_name": "fruitbot", "distribution_mode": "hard"})
    raw = torch.load(path, weights_only=True)
    assert raw["architecture"] == "trex2020" and raw["ensemble_size"] == 2 and raw["obs_shape"] == [64, 64, 3]
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
