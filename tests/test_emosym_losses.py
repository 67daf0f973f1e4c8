"""EmoSym's losses against hand computations: the rationale InfoNCE (duplicates as one candidate), the
verifiable reward, the adaptive β at each of its three branches and the whole step-2 objective."""

import math

import pytest
import torch

from uniemo.emosym.losses import adaptive_beta, distinct_targets, rationale_info_nce, reward_loss, verifiable_reward


def test_distinct_targets_number_sentences_by_first_appearance():
    rows, index = distinct_targets(["b", "a", "b", "c", "a"])
    assert rows == [0, 1, 3]
    assert index.tolist() == [0, 1, 0, 2, 1]


def test_info_nce_by_hand_with_distinct_sentences():
    ctx = torch.tensor([[1.0, 0.0], [0.0, 2.0]])  # normalised: e1, e2
    text = torch.tensor([[3.0, 0.0], [1.0, 1.0]])  # normalised: e1, (1, 1)/√2
    tau = 0.5
    # row 0: cosines (1, 1/√2), target 0; row 1: cosines (0, 1/√2), target 1
    s = 1 / math.sqrt(2)
    row0 = -(1 / tau) + math.log(math.exp(1 / tau) + math.exp(s / tau))
    row1 = -(s / tau) + math.log(math.exp(0) + math.exp(s / tau))
    got = rationale_info_nce(ctx, text, ["x", "y"], temperature=tau)
    assert got.item() == pytest.approx((row0 + row1) / 2, rel=1e-6)


def test_info_nce_counts_a_repeated_sentence_once():
    """Twins share one candidate: the loss of [a, a, b] equals that of each row against the two sentences."""
    torch.manual_seed(0)
    ctx, t = torch.randn(3, 4), torch.randn(2, 4)
    text = torch.stack([t[0], t[0], t[1]])
    got = rationale_info_nce(ctx, text, ["a", "a", "b"], temperature=0.07)
    logits = torch.nn.functional.normalize(ctx, dim=-1) @ torch.nn.functional.normalize(t, dim=-1).T / 0.07
    want = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 0, 1]))
    assert got.item() == pytest.approx(want.item(), rel=1e-6)
    # with every row's text counted as a candidate (the naive in-batch loss) the value differs
    naive = torch.nn.functional.cross_entropy(
        torch.nn.functional.normalize(ctx, dim=-1) @ torch.nn.functional.normalize(text, dim=-1).T / 0.07,
        torch.arange(3))
    assert abs(naive.item() - got.item()) > 1e-3


def test_info_nce_refuses_mismatched_inputs():
    with pytest.raises(ValueError, match="rationales for a batch"):
        rationale_info_nce(torch.randn(2, 3), torch.randn(2, 3), ["a"])
    with pytest.raises(ValueError, match=r"\(B, E\)"):
        rationale_info_nce(torch.randn(2, 3), torch.randn(2, 4), ["a", "b"])


@pytest.mark.parametrize("kl, beta", [(0.9, 0.05), (0.5, 0.1), (0.3, 0.1), (0.1, 0.1), (0.05, 0.2)])
def test_adaptive_beta_branches(kl, beta):
    assert adaptive_beta(kl) == beta


def test_verifiable_reward_by_hand():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.5, 0.4, 0.1]])
    labels = torch.tensor([0, 1])
    # row 0 right: 0.3 + 0.7·0.7; row 1 wrong: 0.7·0.4
    assert verifiable_reward(probs, labels).tolist() == pytest.approx([0.3 + 0.49, 0.28])


def _by_hand(logits, ref, labels):
    p, q = logits.softmax(1), ref.softmax(1)
    n = len(labels)
    ce = -sum(math.log(p[i, labels[i]]) for i in range(n)) / n
    r = [0.3 * float(p[i].argmax() == labels[i]) + 0.7 * float(p[i, labels[i]]) for i in range(n)]
    objective = sum(r[i] * float(p[i, labels[i]]) for i in range(n)) / n
    kl = sum(float((p[i] * (p[i].log() - q[i].log())).sum()) for i in range(n)) / n
    return ce, objective, kl


@pytest.mark.parametrize("scale, beta", [(0.0, 0.2), (0.7, 0.1), (3.0, 0.05)])
def test_reward_loss_by_hand_at_each_beta(scale, beta):
    """The reference is the policy moved by ``scale``: KL ~0 (β 0.2), in the middle (β 0.1), large (β 0.05)."""
    torch.manual_seed(1)
    logits = torch.randn(4, 8)
    ref = logits + scale * torch.randn(4, 8)
    labels = torch.tensor([0, 3, 5, 7])
    terms = reward_loss(logits, ref, labels)
    ce, objective, kl = _by_hand(logits, ref, labels)
    assert terms.beta == beta == adaptive_beta(kl)
    assert terms.ce.item() == pytest.approx(ce, rel=1e-5)
    assert terms.reward_objective.item() == pytest.approx(objective, rel=1e-5)
    assert terms.kl.item() == pytest.approx(kl, rel=1e-4, abs=1e-7)
    assert terms.loss.item() == pytest.approx(ce - (objective - beta * kl), rel=1e-5)


def test_reward_loss_gradient_holds_the_reward_constant_and_spares_the_reference():
    torch.manual_seed(2)
    logits = torch.randn(3, 8, requires_grad=True)
    ref = torch.randn(3, 8, requires_grad=True)
    labels = torch.tensor([1, 2, 3])
    reward_loss(logits, ref, labels).loss.backward()
    assert ref.grad is None
    # the same objective with r as a constant, written out
    x = logits.detach().clone().requires_grad_(True)
    p = x.softmax(1)
    p_y = p.gather(1, labels[:, None]).squeeze(1)
    r = verifiable_reward(p.detach(), labels)
    log_q = ref.detach().log_softmax(1)
    kl = (p * (p.log() - log_q)).sum(1).mean()
    beta = adaptive_beta(float(kl.detach()))
    (torch.nn.functional.cross_entropy(x, labels) - ((r * p_y).mean() - beta * kl)).backward()
    torch.testing.assert_close(logits.grad, x.grad)
