"""The learned reward as Gymnasium envs for other RL code: SB3's PPO trains on it and receives exactly the reward
model's output on the frames its actions were chosen on, with the true return reported beside it."""

import numpy as np
import pytest
import torch

pytest.importorskip("stable_baselines3", reason="the sb3 extra: pip install -e '.[sb3]' -c constraints.txt")

from stable_baselines3 import PPO  # noqa: E402
from stable_baselines3.common.callbacks import BaseCallback  # noqa: E402

from toolkit.cli import UserError  # noqa: E402
from trex.interop.gym_env import ProcgenEnv, ProcgenVecEnv  # noqa: E402
from trex.interop.reward_env import LearnedRewardEnv, LearnedRewardVecEnv  # noqa: E402
from trex.interop.sb3_env import SB3VecEnv  # noqa: E402
from trex.reward.net import RewardNet, load_reward_model, save_reward_model  # noqa: E402

GAME = "starpilot"  # a random policy scores and ends episodes within a hundred steps


@pytest.fixture
def model_path(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "reward_model.pt"
    save_reward_model(path, RewardNet("fast", 2), {"env_name": GAME, "distribution_mode": "easy"})
    return str(path)


def by_hand(path: str, frames: np.ndarray) -> np.ndarray:
    """The reward model on uint8 frames [B, 64, 64, 3], loaded and applied here, not through the wrapper."""
    net, _ = load_reward_model(path)
    with torch.no_grad():
        return torch.sigmoid(net(torch.from_numpy(frames))).numpy()


class TrueReturns(BaseCallback):
    """Sums each env's `original_env_rew` into the true return of every episode that ends."""

    def __init__(self):
        super().__init__()
        self.acc, self.returns = None, []

    def _on_step(self) -> bool:
        infos, dones = self.locals["infos"], self.locals["dones"]
        self.acc = np.zeros(len(infos)) if self.acc is None else self.acc
        self.acc += [info["original_env_rew"] for info in infos]
        for i in np.flatnonzero(dones):
            self.returns.append(self.acc[i])
            self.acc[i] = 0.0
        return True


def test_sb3_ppo_trains_on_the_learned_reward_and_reports_the_true_return(model_path):
    venv = LearnedRewardVecEnv(ProcgenVecEnv(GAME, num_envs=4, seed=1), model_path, transform="sigmoid")
    model = PPO("CnnPolicy", SB3VecEnv(venv), n_steps=64, batch_size=128, n_epochs=1, seed=0, device="cpu")
    true_returns = TrueReturns()
    model.learn(total_timesteps=512, callback=true_returns)  # two rollouts of 4 x 64 steps

    buf = model.rollout_buffer  # the last rollout: rewards [step, env]; frames channels-first, env-major after training
    assert buf.observations.shape == (4 * 64, 3, 64, 64)
    frames = buf.observations.transpose(0, 2, 3, 1).astype(np.uint8)
    expected = by_hand(model_path, frames).reshape(4, 64).T
    np.testing.assert_allclose(buf.rewards, expected, rtol=1e-5, atol=1e-6)
    assert np.ptp(buf.rewards) > 0  # frames differ, so a reward model's rewards do

    reported = [ep["r"] for ep in model.ep_info_buffer]  # what SB3 logs as rollout/ep_rew_mean
    assert len(reported) >= 3 and any(r > 0 for r in reported)
    assert reported == pytest.approx(true_returns.returns[-len(reported) :])


def test_single_env_rewards_each_frame_its_action_was_chosen_on(model_path):
    env = LearnedRewardEnv(ProcgenEnv(GAME, seed=3), model_path, transform="sigmoid")
    obs, _ = env.reset(seed=3)
    rng = np.random.default_rng(0)
    learned, true = [], []
    for _ in range(1000):
        frame = obs
        obs, reward, terminated, truncated, info = env.step(int(rng.integers(15)))
        assert reward == pytest.approx(float(by_hand(model_path, frame[None])[0]), rel=1e-5)
        learned.append(reward)
        true.append(info["original_env_rew"])
        if terminated:
            break
    assert terminated, "no episode ended; lengthen the loop"
    assert info["episode"]["r"] == pytest.approx(sum(true)) and info["episode"]["l"] == len(true)
    assert info["learned_return"] == pytest.approx(sum(learned), rel=1e-5)
    again, _ = env.reset()
    assert again.shape == (64, 64, 3) and "learned_return" not in env.step(0)[4]


def test_reset_with_a_seed_replays_the_same_episode():
    env = ProcgenEnv(GAME)
    runs = []
    for _ in range(2):
        obs, _ = env.reset(seed=7)
        runs.append([obs] + [env.step(a)[0] for a in (1, 4, 4, 7)])
    np.testing.assert_array_equal(np.stack(runs[0]), np.stack(runs[1]))


def test_a_model_of_another_game_or_frame_shape_is_refused_in_one_line(tmp_path):
    other_game, small = tmp_path / "coinrun.pt", tmp_path / "small.pt"
    save_reward_model(other_game, RewardNet("fast", 1), {"env_name": "coinrun", "distribution_mode": "easy"})
    save_reward_model(small, RewardNet("fast", 1, (32, 32, 3)), {"env_name": GAME, "distribution_mode": "easy"})
    for path, words in ((other_game, "trained on 'coinrun'"), (small, r"expects frames of shape \(32, 32, 3\)")):
        with pytest.raises(UserError, match=words) as err:
            LearnedRewardVecEnv(ProcgenVecEnv(GAME), str(path))
        assert "\n" not in str(err.value)
        with pytest.raises(UserError, match=words):
            LearnedRewardEnv(ProcgenEnv(GAME), str(path))
