"""The chunked PPO update computes the one-pass update's gradient, and so the same parameters after a step."""

from __future__ import annotations

import pytest
import torch

from baseline_agent.models import Policy
from baseline_agent.ppo import ppo_gradient, ppo_loss

B = 24


def _batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return {
        "obs": torch.randint(0, 256, (B, 64, 64, 3), dtype=torch.uint8, generator=g),
        "actions": torch.randint(0, 15, (B,), generator=g),
        "logps": -2.7 + 0.3 * torch.randn(B, generator=g),
        "values": torch.randn(B, generator=g),
        "advantages": 3.0 + 2.0 * torch.randn(B, generator=g),  # far from normalised, so a per-chunk
        "returns": torch.randn(B, generator=g),
    }  # normalisation would show


def _policy() -> Policy:
    torch.manual_seed(0)
    return Policy(15, [4, 8, 8], 32)


def _grads(policy: Policy) -> list[torch.Tensor]:
    return [p.grad.clone() for p in policy.parameters()]


def test_one_pass_gradient_is_ppo_loss_backward():
    mb = _batch()
    reference, policy = _policy(), _policy()
    logits, values = reference(mb["obs"])
    ppo_loss(logits, values, mb["actions"], mb["logps"], mb["values"], mb["advantages"], mb["returns"], 0.2, 0.01, 0.5)[
        "loss"
    ].backward()
    ppo_gradient(policy, mb, 0, 0.2, 0.01, 0.5)
    for a, b in zip(_grads(reference), _grads(policy), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("chunk", [1, 5, 8])  # 5 leaves a short last chunk
def test_chunked_gradient_and_step_match_one_pass(chunk):
    mb = _batch()
    whole, chunked = _policy(), _policy()
    losses_whole = ppo_gradient(whole, mb, 0, 0.2, 0.01, 0.5)
    losses_chunked = ppo_gradient(chunked, mb, chunk, 0.2, 0.01, 0.5)
    for k, v in losses_whole.items():
        assert torch.allclose(v, losses_chunked[k], rtol=1e-5, atol=1e-6), k
    grads = _grads(whole)
    assert sum(g.abs().sum() for g in grads) > 0
    for a, b in zip(grads, _grads(chunked), strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-7)
    opts = [torch.optim.Adam(p.parameters(), lr=5e-4, eps=1e-5) for p in (whole, chunked)]
    for opt, policy in zip(opts, (whole, chunked), strict=True):
        torch.nn.utils.clip_grad_norm_(list(policy.parameters()), 0.5)
        opt.step()
    for a, b in zip(whole.parameters(), chunked.parameters(), strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)


def test_chunks_normalise_advantages_over_the_whole_minibatch():
    """Normalising each chunk on its own gives another gradient, which the test above would catch."""
    mb = _batch()
    whole, per_chunk = _policy(), _policy()
    ppo_gradient(whole, mb, 0, 0.2, 0.01, 0.5)
    for part in range(0, B, 8):
        sub = {k: v[part : part + 8] for k, v in mb.items()}
        logits, values = per_chunk(sub["obs"])
        loss = ppo_loss(
            logits,
            values,
            sub["actions"],
            sub["logps"],
            sub["values"],
            sub["advantages"],
            sub["returns"],
            0.2,
            0.01,
            0.5,
        )["loss"]
        (loss * 8 / B).backward()
    assert not all(
        torch.allclose(a, b, rtol=1e-4, atol=1e-7) for a, b in zip(_grads(whole), _grads(per_chunk), strict=True)
    )
