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
    official_condition_loss,
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


def plain_released_clip_loss(q, t, ids, tau, symmetric):
    """The released code's L_S / L_O written out with python floats: a CLIP loss over all B rows and
    columns, each direction averaged over the rows whose attribute is present (the others' targets ignored)."""
    n = len(ids)
    s = [[sum(a * b for a, b in zip(q[i], t[j])) / tau for j in range(n)] for i in range(n)]

    def direction(m):
        terms = [math.log(sum(math.exp(x) for x in m[i])) - m[i][i] for i in range(n) if ids[i] >= 0]
        return sum(terms) / len(terms)

    i2t = direction(s)
    if not symmetric:
        return i2t
    return 0.5 * (i2t + direction([list(col) for col in zip(*s)]))


def test_contrastive_released_masking_hand_value():
    # rows 0 and 1 share attribute 7 (same text e0); row 2 has none, so its text is the dummy (here e1).
    # τ = 1, so the logits are the dot products:
    #   q0 = e0: [1, 1, 0]   q1 = e1: [0, 0, 1]   q2 = e0: [1, 1, 0]   (columns: t0 = e0, t1 = e0, t2 = e1)
    q = torch.stack([E[0], E[1], E[0]]).double()
    t = torch.stack([E[0], E[0], E[1]]).double()
    ids = torch.tensor([7, 7, -1])
    e = math.e
    # query -> text, anchors 0 and 1 (row 2 ignored), every column in the denominators:
    #   row 0: log(2e + 1) - 1 = log(2 + 1/e)   (its twin's text is a false negative, the dummy a negative)
    #   row 1: log(2 + e) - 0                   (row 1's query matches the dummy text)
    i2t = (math.log(2 + 1 / e) + math.log(2 + e)) / 2
    # text -> query, anchors t0 and t1, every query (the missing row's q2 = e0 too) in the denominators:
    #   t0 over (q0, q1, q2) = [1, 0, 1], target 0: log(2e + 1) - 1;   t1: same logits, target 1: log(2e + 1) - 0
    t2i = (math.log(2 + 1 / e) + math.log(2 * e + 1)) / 2
    got = expert_contrastive_loss(q, t, ids, temperature=1.0, released_masking=True)
    assert got.item() == pytest.approx(i2t, abs=1e-12)
    got = expert_contrastive_loss(q, t, ids, temperature=1.0, symmetric=True, released_masking=True)
    assert got.item() == pytest.approx(0.5 * (i2t + t2i), abs=1e-12)
    # the plain reimplementation agrees with the hand values
    assert plain_released_clip_loss(q.tolist(), t.tolist(), ids.tolist(), 1.0, False) == pytest.approx(i2t, abs=1e-12)
    assert plain_released_clip_loss(q.tolist(), t.tolist(), ids.tolist(), 1.0, True) == \
        pytest.approx(0.5 * (i2t + t2i), abs=1e-12)
    # our masking drops row 2 and masks the twins: each remaining row sees only its own text -> 0
    assert expert_contrastive_loss(q, t, ids, temperature=1.0, symmetric=True).item() == pytest.approx(0.0, abs=1e-12)


def test_contrastive_released_masking_gradient_of_missing_query():
    # A missing row is never an anchor, so query -> text gives its query no gradient; text -> query keeps
    # that query in the other texts' denominators, so the symmetric loss does.
    q = torch.stack([E[0], E[1], E[0]]).double().requires_grad_(True)
    t = torch.stack([E[0], E[0], E[1]]).double()
    ids = torch.tensor([7, 7, -1])
    expert_contrastive_loss(q, t, ids, temperature=1.0, released_masking=True).backward()
    assert torch.all(q.grad[2] == 0) and q.grad[:2].abs().sum() > 0
    q.grad = None
    expert_contrastive_loss(q, t, ids, temperature=1.0, symmetric=True, released_masking=True).backward()
    assert q.grad[2].abs().sum() > 0


@pytest.mark.parametrize("symmetric", [False, True])
def test_contrastive_released_masking_matches_plain_loss(symmetric):
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        q = F.normalize(torch.randn(6, 5, generator=g, dtype=torch.float64), dim=-1)
        t = F.normalize(torch.randn(6, 5, generator=g, dtype=torch.float64), dim=-1)
        ids = torch.randint(-1, 3, (6,), generator=g)  # missing rows and duplicates in most batches
        ids[:2] = torch.tensor([0, 1])  # at least one anchor, and attribute 1 ...
        ids[5] = 1  # ... twice: equal strings, equal text embeddings
        t[ids == 1] = t[1].clone()
        got = expert_contrastive_loss(q, t, ids, temperature=0.07, symmetric=symmetric, released_masking=True)
        expected = plain_released_clip_loss(q.tolist(), t.tolist(), ids.tolist(), 0.07, symmetric)
        assert got.item() == pytest.approx(expected, rel=1e-10)


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


def test_official_condition_loss_hand_value():
    z = torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 2.0], [-6.0, 8.0, 0.0]], dtype=torch.float64)
    pos = torch.tensor([1, 2, 0])  # e+
    neg = torch.tensor([0, 0, 1])  # e-
    # cos(z, onehot(k)) = z_k / ||z||; hinge = max(0, 0.5 + cos_neg - cos_pos):
    #   row 0: ||z|| = 5,  cos_pos = 4/5,   cos_neg = 3/5  -> 0.5 + 0.6 - 0.8 = 0.3   (active)
    #   row 1: ||z|| = 2,  cos_pos = 1,     cos_neg = 0    -> 0.5 - 1 < 0 -> 0       (inactive)
    #   row 2: ||z|| = 10, cos_pos = -6/10, cos_neg = 8/10 -> 0.5 + 0.8 + 0.6 = 1.9  (active)
    hinge = (0.3 + 0.0 + 1.9) / 3
    # CE on the raw logits: row 0 log(e^3 + e^4 + 1) - 4 = 0.32656264126747026
    #                       row 1 log(2 + e^2) - 2       = 0.2395447662218846
    #                       row 2 log(e^-6 + e^8 + 1) + 6 = 14.000336237622417
    ce = (0.32656264126747026 + 0.2395447662218846 + 14.000336237622417) / 3  # 4.8554812150372575
    got = official_condition_loss(z, pos, neg, hinge_weight=1.0, ce_weight=0.0)
    assert got.item() == pytest.approx(hinge, abs=1e-12)
    got = official_condition_loss(z, pos, neg, hinge_weight=0.0, ce_weight=1.0)
    assert got.item() == pytest.approx(ce, abs=1e-12)
    # the released weights and margin are the defaults: 1e-3·CE + 1e-6·hinge = 0.0048562145483705904
    assert official_condition_loss(z, pos, neg).item() == pytest.approx(0.0048562145483705904, abs=1e-15)
    assert official_condition_loss(z, pos, neg, margin=0.0, hinge_weight=1.0, ce_weight=0.0).item() == \
        pytest.approx(1.4 / 3, abs=1e-12)  # margin 0: only row 2 is active, 0.8 + 0.6


def test_official_condition_loss_gradient_reaches_logits():
    z = torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 2.0], [-6.0, 8.0, 0.0]], dtype=torch.float64,
                     requires_grad=True)
    pos, neg = torch.tensor([1, 2, 0]), torch.tensor([0, 0, 1])
    official_condition_loss(z, pos, neg, hinge_weight=1.0, ce_weight=0.0).backward()
    # d/dz of (z_neg - z_pos) / ||z||, over the batch of 3:
    #   row 0: [1, -1, 0]/5 - (3 - 4)·[3, 4, 0]/125 = [0.224, -0.168, 0];  row 1: inactive, 0
    #   row 2: [-1, 1, 0]/10 - (8 + 6)·[-6, 8, 0]/1000 = [-0.016, -0.012, 0]
    expected = torch.tensor([[0.224, -0.168, 0.0], [0.0, 0.0, 0.0], [-0.016, -0.012, 0.0]], dtype=torch.float64) / 3
    assert torch.allclose(z.grad, expected, atol=1e-12)
    z.grad = None
    official_condition_loss(z, pos, neg).backward()  # the CE term reaches every row
    assert torch.all(z.grad.abs().sum(dim=1) > 0)


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
