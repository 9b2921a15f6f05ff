"""The T-REX loss (trex/reward/loss.py), computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from trex.reward.loss import bradley_terry_loss, ranked_correctly, trex_loss

# One member, two pairs: snippet returns (1, 2) labelled 1 (the second ranks higher), and (0, 0) labelled 0.
RETURNS = torch.tensor([[[1.0, 2.0], [0.0, 0.0]]])
LABELS = torch.tensor([1, 0])


def test_bradley_terry_loss_by_hand():
    first = -math.log(math.exp(2) / (math.exp(1) + math.exp(2)))  # log(1 + e^-1) = 0.3133
    second = math.log(2)  # equal returns: probability one half
    assert bradley_terry_loss(RETURNS, LABELS).item() == pytest.approx((first + second) / 2, abs=1e-6)


def test_bradley_terry_loss_averages_the_members():
    two = torch.cat([RETURNS, RETURNS.flip(-1)])  # the second member ranks every pair the other way
    mirrored = bradley_terry_loss(RETURNS.flip(-1), LABELS)
    assert bradley_terry_loss(two, LABELS).item() == pytest.approx(
        (bradley_terry_loss(RETURNS, LABELS).item() + mirrored.item()) / 2, abs=1e-6
    )


def test_the_loss_falls_as_the_labelled_snippet_scores_higher():
    higher = torch.tensor([[[1.0, 5.0], [3.0, 0.0]]])
    assert bradley_terry_loss(higher, LABELS) < bradley_terry_loss(RETURNS, LABELS)


def test_trex_loss_adds_the_l1_penalty_per_member_and_pair():
    rewards = torch.tensor([[1.0, -2.0, 3.0]])  # |.| sums to 6 over 1 member and 2 pairs: 3 per pair
    bt = bradley_terry_loss(RETURNS, LABELS).item()
    assert trex_loss(RETURNS, rewards, LABELS, 0.1).item() == pytest.approx(bt + 0.1 * 3.0, abs=1e-6)
    assert trex_loss(RETURNS, rewards, LABELS, 0.0).item() == pytest.approx(bt, abs=1e-7)


def test_ranked_correctly_counts_a_tie_half():
    assert ranked_correctly(RETURNS[0], LABELS).item() == 1.5
    assert ranked_correctly(RETURNS[0], 1 - LABELS).item() == 0.5
