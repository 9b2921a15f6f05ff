"""Step 4: a reward source replaces the true reward for learning; learned and true returns are both logged."""

import numpy as np
import pytest
import torch

from baseline_agent.ppo import PPOTrainer
from toolkit.config import build_config
from toolkit.logger import read_progress
from trex.policy.config import PolicyConfig

TINY = dict(
    env_name="starpilot",
    num_envs=4,
    num_steps=64,
    num_minibatches=2,
    update_epochs=1,
    channels=[4, 8, 8],
    hidden_size=32,
    num_threads=1,
    save_interval=100,
    eval_interval=1,
    reward_model=["unused.pt"],
)


def brightness(obs: torch.Tensor) -> torch.Tensor:
    """A known function of the frame: its mean pixel value in [0, 1]."""
    return obs.float().mean(dim=(1, 2, 3)) / 255.0


class Recorder:
    """A reward source that counts the frames it scores."""

    def __init__(self, fn):
        self.fn, self.frames = fn, 0

    def __call__(self, obs):
        self.frames += len(obs)
        return self.fn(obs)


def test_learned_episode_returns_are_sums_of_the_reward_over_the_episode_frames(tmp_path):
    cfg = build_config(PolicyConfig, {**TINY, "total_timesteps": 256, "run_dir": str(tmp_path / "r")})
    trainer = PPOTrainer(cfg, reward_source=Recorder(brightness))
    expected, acc = [], np.zeros(cfg.num_envs)
    for _ in range(6):
        batch = trainer.collect_rollout()
        trainer.training_rewards(batch)
        frame_rewards = brightness(batch["obs"].reshape(-1, 64, 64, 3)).reshape(cfg.num_steps, cfg.num_envs).numpy()
        for t in range(cfg.num_steps):  # frame t belongs to the episode that action t continues
            acc += frame_rewards[t]
            for i in np.flatnonzero(batch["dones"][t]):
                expected.append(acc[i])
                acc[i] = 0.0
    assert len(expected) > 0, "no episode finished; lengthen the rollout"
    assert list(trainer.stats.learned) == pytest.approx(expected[-100:], rel=1e-5)
    assert len(trainer.stats.ret) == len(trainer.stats.learned)  # true returns are still recorded


def test_constant_learned_reward_logs_episode_length_and_true_return_beside_it(tmp_path):
    cfg = build_config(PolicyConfig, {**TINY, "total_timesteps": 1024, "run_dir": str(tmp_path / "r")})
    source = Recorder(lambda obs: torch.ones(len(obs)))
    summary = PPOTrainer(cfg, reward_source=source).train()
    rows = read_progress(tmp_path / "r/progress.csv")
    assert {"learned_eprewmean", "eval_learned_eprewmean", "eprewmean", "eval_eprewmean"} <= set(rows[0])
    last = rows[-1]
    assert float(last["learned_eprewmean"]) == pytest.approx(float(last["eplenmean"]))
    assert float(last["eval_learned_eprewmean"]) == pytest.approx(float(last["eval_eplenmean"]))
    assert summary["held_out_return"] == pytest.approx(float(last["eval_eprewmean"]))
    assert summary["learned_return"] == pytest.approx(float(last["learned_eprewmean"]))
    assert summary["held_out_normalized_score"] == pytest.approx((summary["held_out_return"] - 2.5) / (64 - 2.5))
    updates = 1024 // (cfg.num_envs * cfg.num_steps)  # every frame of every rollout and held-out evaluation
    assert source.frames == 2 * updates * cfg.num_envs * cfg.num_steps


def test_a_reward_model_of_another_game_or_mode_is_refused(tmp_path):
    from toolkit.cli import UserError
    from trex.policy.learned_reward import load_learned_reward
    from trex.reward.net import RewardNet, save_reward_model

    path = tmp_path / "reward_model.pt"
    net = RewardNet("fast", 1)
    save_reward_model(path, net, {"env_name": "starpilot", "distribution_mode": "hard"})
    obs = torch.randint(0, 256, (3, 64, 64, 3), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(load_learned_reward(str(path), "starpilot", "hard")(obs), net(obs))
    with pytest.raises(UserError, match="trained on 'starpilot', not 'coinrun'"):
        load_learned_reward(str(path), "coinrun", "hard")
    with pytest.raises(UserError, match="trained on hard levels, not easy"):
        load_learned_reward(str(path), "starpilot", "easy")


def test_reward_transforms_ensemble_and_survival_bonus_by_hand(tmp_path):
    """raw, sigmoid and standardise (by each model's stored training-frame mean and std), averaged over models,
    then the survival bonus; a file without statistics is refused for standardise in one line."""
    from toolkit.cli import UserError
    from trex.policy.learned_reward import ConstantReward, load_reward_source
    from trex.reward.net import RewardNet, save_reward_model

    obs = torch.randint(0, 256, (5, 64, 64, 3), dtype=torch.uint8)
    paths, raw = [], []
    for k, stats in enumerate(({"mean": 0.5, "std": 2.0, "frames": 10}, {"mean": -1.0, "std": 0.5, "frames": 10})):
        torch.manual_seed(k)
        net = RewardNet("fast").eval()
        paths.append(str(tmp_path / f"m{k}.pt"))
        meta = {"env_name": "starpilot", "distribution_mode": "easy", "reward_stats": stats}
        save_reward_model(paths[-1], net, meta)
        with torch.no_grad():
            raw.append((net(obs), stats))
    expect = {
        "none": (raw[0][0] + raw[1][0]) / 2,
        "sigmoid": (torch.sigmoid(raw[0][0]) + torch.sigmoid(raw[1][0])) / 2,
        "standardise": sum((r - s["mean"]) / s["std"] for r, s in raw) / 2,
    }
    for transform, want in expect.items():
        source = load_reward_source(paths, "starpilot", "easy", transform, survival=0.25)
        torch.testing.assert_close(source(obs), want + 0.25)
    torch.testing.assert_close(ConstantReward()(obs), torch.ones(5))
    save_reward_model(tmp_path / "old.pt", RewardNet("fast"), {"env_name": "starpilot", "distribution_mode": "easy"})
    with pytest.raises(UserError, match="standardise"):
        load_reward_source([str(tmp_path / "old.pt")], "starpilot", "easy", "standardise")
