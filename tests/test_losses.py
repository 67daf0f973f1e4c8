"""Losses on hand-computable inputs."""

import math

import pytest
import torch
import torch.nn.functional as F

from uniemo.losses import (
    condition_negatives,
    diffusion_loss,
    emotion_ce_loss,
    emotion_condition_loss,
    expert_contrastive_loss,
    weighted_sum,
)

E = torch.eye(3)  # three orthonormal embeddings


def test_contrastive_perfect_alignment_value():
    # q_i = t_i orthonormal: logits diag 1/τ, off-diagonal 0 -> loss = log(1 + 2 e^{-1/τ})
    tau = 0.5
    loss = expert_contrastive_loss(E, E, torch.tensor([0, 1, 2]), temperature=tau)
    assert loss.item() == pytest.approx(math.log(1 + 2 * math.exp(-1 / tau)), rel=1e-6)


def test_contrastive_missing_rows_are_neither_positive_nor_negative():
    tau = 0.5
    q = torch.cat([E, F.normalize(torch.ones(1, 3), dim=-1)])
    t = torch.cat([E, F.normalize(torch.ones(1, 3), dim=-1)])  # the 4th text would be a strong negative
    with_missing = expert_contrastive_loss(q, t, torch.tensor([0, 1, 2, -1]), temperature=tau)
    without = expert_contrastive_loss(E, E, torch.tensor([0, 1, 2]), temperature=tau)
    assert with_missing.item() == pytest.approx(without.item(), rel=1e-6)
    # and the missing row's query gets no gradient
    q = q.clone().requires_grad_(True)
    expert_contrastive_loss(q, t, torch.tensor([0, 1, 2, -1]), temperature=tau).backward()
    assert torch.all(q.grad[3] == 0)


def test_contrastive_duplicates_are_not_false_negatives():
    # rows 0 and 1 share attribute 7 (same text); only row 2 is a negative for them
    tau = 1.0
    t = torch.stack([E[0], E[0], E[1]])
    q = torch.stack([E[0], E[0], E[1]])
    loss = expert_contrastive_loss(q, t, torch.tensor([7, 7, 3]), temperature=tau)
    # rows 0, 1: positive logit 1, one remaining negative (row 2) with logit 0 -> log(1 + e^{-1});
    # row 2: both other texts are true negatives -> log(1 + 2 e^{-1}). Without the mask rows 0/1 would
    # see their twin as a negative with logit 1 -> log(2 + e^{-1}).
    expected = (2 * math.log(1 + math.exp(-1)) + math.log(1 + 2 * math.exp(-1))) / 3
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_contrastive_hand_value_and_symmetric():
    q = F.normalize(torch.tensor([[1.0, 0.0], [1.0, 1.0]]), dim=-1)
    t = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    tau = 0.25
    s = 1 / math.sqrt(2)
    # row 0: logits [1, 0]/τ -> -log softmax[0]; row 1: logits [s, s]/τ -> log 2
    row0 = -math.log(math.exp(4) / (math.exp(4) + 1))
    expected = (row0 + math.log(2)) / 2
    assert expert_contrastive_loss(q, t, torch.tensor([0, 1]), temperature=tau).item() == pytest.approx(expected, rel=1e-6)
    # text->query: column 0 logits [1, s]/τ target 0, column 1 logits [0, s]/τ target 1
    col0 = -math.log(math.exp(4) / (math.exp(4) + math.exp(4 * s)))
    col1 = -math.log(math.exp(4 * s) / (1 + math.exp(4 * s)))
    sym = 0.5 * (expected + (col0 + col1) / 2)
    got = expert_contrastive_loss(q, t, torch.tensor([0, 1]), temperature=tau, symmetric=True)
    assert got.item() == pytest.approx(sym, rel=1e-6)


def test_contrastive_all_missing_is_zero_with_graph():
    q = torch.randn(2, 3, requires_grad=True)
    loss = expert_contrastive_loss(q, q.detach(), torch.tensor([-1, -1]))
    assert loss.item() == 0.0 and loss.requires_grad


def test_ce_hand_value():
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])
    # row 0: log 2; row 1 (label 0): -log(3/4)
    assert emotion_ce_loss(logits, torch.tensor([1, 0])).item() == pytest.approx(
        (math.log(2) - math.log(0.75)) / 2, rel=1e-6)


def test_condition_negatives_both_cases():
    logits = torch.tensor([[5.0, 3.0, 1.0], [1.0, 5.0, 3.0]])
    labels = torch.tensor([0, 2])  # row 0 right -> second-highest (1); row 1 wrong -> the prediction (1)
    assert condition_negatives(logits, labels).tolist() == [1, 1]


def test_condition_loss_hand_value():
    # e^p = softmax([0, log 2, log 1]) = [1/4, 2/4, 1/4]; ||e^p|| = sqrt(6)/4
    logits = torch.log(torch.tensor([[1.0, 2.0, 1.0]]))
    norm = math.sqrt(6) / 4
    d = lambda k: 1 - [0.25, 0.5, 0.25][k] / norm  # noqa: E731
    # positive 1 (closer), negative 0: max(0, d1 - d0 + 0.1)
    expected = max(0.0, d(1) - d(0) + 0.1)
    got = emotion_condition_loss(logits, torch.tensor([1]), torch.tensor([0]), margin=0.1)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    # swapped: positive 0, negative 1 -> d0 - d1 + 0.1 > 0
    got = emotion_condition_loss(logits, torch.tensor([0]), torch.tensor([1]), margin=0.1)
    assert got.item() == pytest.approx(d(0) - d(1) + 0.1, rel=1e-6)


def test_diffusion_loss_is_mse():
    assert diffusion_loss(torch.ones(2, 4), torch.zeros(2, 4)).item() == 1.0


def test_weighted_sum_skips_zero_weight_terms():
    called = []

    def term(name, v):
        def f():
            called.append(name)
            return torch.tensor(v)
        return f

    total, logged = weighted_sum({"a": 0.25, "b": 0.0, "c": 0.5},
                                 {"a": term("a", 2.0), "b": term("b", 100.0), "c": term("c", 4.0)})
    assert total.item() == pytest.approx(2.5)
    assert called == ["a", "c"] and set(logged) == {"a", "c"}
    with pytest.raises(ValueError, match="unknown terms"):
        weighted_sum({"zzz": 1.0}, {"a": term("a", 1.0)})
