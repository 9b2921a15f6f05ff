"""The T-REX loss: a Bradley-Terry model of which snippet of a pair the demonstrations rank higher.

P(snippet 1 preferred) = exp(R_1) / (exp(R_0) + exp(R_1)), with R the sum of the net's per-frame rewards over a
snippet; the loss is the cross-entropy of the labels under that model (Brown et al. 2019, eq. 1), as imitation's
`CrossEntropyRewardLoss`. T-REX's own code adds an L1 penalty on the per-frame rewards, summed per pair.

`supervision: true_returns` swaps it for a diagnostic oracle: the squared error of each snippet's predicted return
against its true return, which T-REX never sees; what a net learns so is what the rank labels leave out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SUPERVISIONS = ("ranks", "true_returns")  # config key 'supervision': T-REX's labels, or the oracle's


def bradley_terry_loss(returns: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the labels ([B], 0 or 1: which snippet ranks higher) under the Bradley-Terry model of
    snippet returns [M, B, 2] (M ensemble members, each scored on every pair)."""
    members, batch = returns.shape[:2]
    return F.cross_entropy(returns.reshape(members * batch, 2), labels.repeat(members))


def trex_loss(returns: torch.Tensor, rewards: torch.Tensor, labels: torch.Tensor, l1_reg: float) -> torch.Tensor:
    """`bradley_terry_loss` plus `l1_reg` times the per-frame rewards' [M, F] absolute sum per member and pair."""
    members, batch = returns.shape[:2]
    return bradley_terry_loss(returns, labels) + l1_reg * rewards.abs().sum() / (members * batch)


def true_return_loss(returns: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean squared error of snippet returns [M, B, 2] against the snippets' true returns [B, 2] (the oracle)."""
    return (returns - targets).pow(2).mean()


def ranked_correctly(returns: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Number of pairs [B, 2] whose higher return is the labelled snippet; a tie counts half."""
    diff = returns[:, 1] - returns[:, 0]
    sign = torch.where(labels == 1, diff, -diff)
    return (sign > 0).float().sum() + 0.5 * (sign == 0).float().sum()
