"""PPO arithmetic against hand-computed values: GAE across an episode boundary, the ppo2 losses, reward scaling."""

import math

import numpy as np
import pytest
import torch

from baseline_agent.envs import RewardNormalizer, RunningMeanStd
from baseline_agent.ppo import compute_gae, ppo_loss


def test_gae_matches_hand_computation_across_an_episode_boundary():
    gamma, lam = 0.9, 0.5
    rewards = torch.tensor([[1.0], [0.0], [2.0]])
    values = torch.tensor([[0.5], [1.0], [0.2]])
    dones = torch.tensor([[False], [True], [False]])  # the episode ends with reward 1 (t=1)
    last_value = torch.tensor([0.4])
    adv, ret = compute_gae(rewards, values, dones, last_value, gamma, lam)
    # t=2: delta = 2 + 0.9*0.4 - 0.2 = 2.16; A2 = 2.16
    # t=1: done -> delta = 0 - 1.0 = -1.0; A1 = -1.0 (no bootstrap, no carry)
    # t=0: delta = 1 + 0.9*1.0 - 0.5 = 1.4; A0 = 1.4 + 0.9*0.5*(-1.0) = 0.95
    expected = torch.tensor([[0.95], [-1.0], [2.16]])
    assert torch.allclose(adv, expected, atol=1e-6)
    assert torch.allclose(ret, expected + values, atol=1e-6)


def test_gae_with_lambda_one_is_the_discounted_return_minus_value():
    rewards = torch.tensor([[1.0], [1.0], [1.0]])
    values = torch.zeros(3, 1)
    dones = torch.zeros(3, 1, dtype=torch.bool)
    _, ret = compute_gae(rewards, values, dones, torch.tensor([10.0]), 0.5, 1.0)
    assert ret[0].item() == pytest.approx(1 + 0.5 + 0.25 + 0.125 * 10)


def test_ppo_losses_match_hand_computation():
    logits = torch.log(torch.tensor([[0.5, 0.5], [0.8, 0.2]]))
    actions = torch.tensor([0, 1])
    old_logp = torch.log(torch.tensor([0.25, 0.2]))  # ratios 2.0 and 1.0
    values = torch.tensor([1.0, 0.0])
    old_values = torch.tensor([0.5, 0.0])
    returns = torch.tensor([2.0, 1.0])
    advantages = torch.tensor([1.0, -1.0])
    out = ppo_loss(
        logits, values, actions, old_logp, old_values, advantages, returns, clip_range=0.2, ent_coef=0.01, vf_coef=0.5
    )
    adv = (advantages - advantages.mean()) / (advantages.std() + 1e-8)  # [0.7071, -0.7071]
    a = adv[0].item()
    # sample 0: ratio 2 -> max(-a*2, -a*1.2) = -1.2a ; sample 1: ratio 1 -> a*1 (adv=-a): max(a, a) = a
    assert out["policy_loss"].item() == pytest.approx((-1.2 * a + a) / 2, abs=1e-6)
    # values: sample 0 clipped to 0.7: max((1-2)^2, (0.7-2)^2) = 1.69; sample 1: 1.0
    assert out["value_loss"].item() == pytest.approx(0.5 * (1.69 + 1.0) / 2, abs=1e-6)
    ent = (math.log(2) + -(0.8 * math.log(0.8) + 0.2 * math.log(0.2))) / 2
    assert out["policy_entropy"].item() == pytest.approx(ent, abs=1e-6)
    assert out["approxkl"].item() == pytest.approx(0.5 * (math.log(2) ** 2) / 2, abs=1e-6)
    assert out["clipfrac"].item() == pytest.approx(0.5)
    total = out["policy_loss"] - 0.01 * out["policy_entropy"] + 0.5 * out["value_loss"]
    assert out["loss"].item() == pytest.approx(total.item(), abs=1e-7)


def test_running_mean_std_matches_numpy_over_batches():
    rng = np.random.default_rng(0)
    data = [rng.normal(3, 2, size=50) for _ in range(5)]
    rms = RunningMeanStd(epsilon=0.0)
    rms.count = 0.0
    rms.mean, rms.var = 0.0, 0.0
    for batch in data:
        if rms.count == 0:
            rms.mean, rms.var, rms.count = batch.mean(), batch.var(), len(batch)
        else:
            rms.update_from_moments(batch.mean(), batch.var(), len(batch))
    allv = np.concatenate(data)
    assert rms.mean == pytest.approx(allv.mean())
    assert rms.var == pytest.approx(allv.var())


def test_reward_normalizer_follows_vecnormalize_by_hand():
    norm = RewardNormalizer(num_envs=2, gamma=0.5)
    r1 = norm(np.array([1.0, 3.0]), np.array([False, True]))
    # ret = [1, 3]: batch mean 2, var 1, count 2 merged with (0, 1, 1e-4)
    n = 1e-4 + 2
    mean = 2 * 2 / n
    var = (1 * 1e-4 + 1 * 2 + 4 * 1e-4 * 2 / n) / n
    assert r1 == pytest.approx(np.array([1.0, 3.0]) / np.sqrt(var + 1e-8), rel=1e-5)
    assert norm.ret.tolist() == [1.0, 0.0]  # the finished episode's running return restarts
    assert norm.rms.mean == pytest.approx(mean)
    norm.rms.mean, norm.rms.var, norm.rms.count = 0.0, 1e-4, 1e12  # a long history of tiny returns
    big = norm(np.array([1.0, -1.0]), np.array([False, False]))
    assert big.tolist() == [10.0, -10.0]  # 1/sqrt(1e-4) = 100, clipped at 10 as VecNormalize did
