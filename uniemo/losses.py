"""Losses of both stages (paper Eq. 4, 7, 8, 9, 10).

Paper -> code:
    L_S, L_O (Eq. 4)     -> ``expert_contrastive_loss`` (query -> attribute-text InfoNCE, τ = 0.07)
    L_Cls                -> ``emotion_ce_loss``
    L_cond (Eq. 7)       -> ``emotion_condition_loss`` (hinge on cosine distances to one-hot vectors);
                            ``official_condition_loss`` is the released code's variant (raw logits, plus CE)
    L_diff (Eq. 8)       -> ``diffusion_loss`` (ε-prediction MSE)
    L_U, L (Eq. 9, 10)   -> ``weighted_sum`` over a dict of named terms; a term of weight 0 is not computed

All losses are plain functions of tensors; the training scripts decide which to combine.
"""

from __future__ import annotations

from typing import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor


def emotion_ce_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """L_Cls: cross-entropy of (B, C) logits against (B,) class indices."""
    return F.cross_entropy(logits, labels)


def expert_contrastive_loss(
    query_embeds: Tensor,
    text_embeds: Tensor,
    attribute_ids: Tensor,
    temperature: float = 0.07,
    symmetric: bool = False,
    released_masking: bool = False,
) -> Tensor:
    """L_S / L_O: InfoNCE between projected pooled queries and the attribute texts of the batch (Eq. 4).

    Row i's positive is its own attribute text; the negatives are the other rows' texts. By default rows
    whose attribute is missing (id < 0) are excluded entirely: they are neither anchors nor negatives; and
    rows that share an attribute string are not false negatives of each other: those entries are masked out.

    ``released_masking=True`` reproduces the released code's batch instead. Its loader gives a row without
    the attribute a dummy text (the literal ``"scene"`` or ``"object"``), and its loss is a CLIP loss over
    the full (B, B) matrix with the targets of those rows ignored:

    - query -> text: only rows with the attribute are anchors (mean over them), but every column, the
      dummy texts included, stays in each anchor's softmax denominator;
    - text -> query (``symmetric``): only the texts of rows with the attribute are anchors, and every query,
      the missing rows' queries included, stays in their denominators (so those queries still get gradient,
      as negatives);
    - duplicate attribute strings are not masked: a twin's text (or query) is a false negative.

    In that mode the caller must pass, for each missing row, the CLIP text embedding of the dummy string
    (``"scene"`` for L_S, ``"object"`` for L_O), normalised like the other texts; ``attribute_ids`` still
    marks those rows with -1.

    Args:
        query_embeds: (B, E) L2-normalised ``normalize(W · pooled_query)``.
        text_embeds: (B, E) L2-normalised CLIP text embedding of each row's attribute; where it is missing,
            any value by default, the dummy text's embedding with ``released_masking``.
        attribute_ids: (B,) integer id of each row's attribute string, -1 where missing.
        temperature: τ (0.07 in the paper; the released code fixes logit_scale = 1/0.07 too).
        symmetric: also add the text -> query direction and average (the released code); default: paper,
            query -> text only.
        released_masking: the released code's masking (above) instead of ours.
    Returns:
        scalar loss; 0 (with a graph) when the batch has no row with this attribute.
    """
    valid = attribute_ids >= 0
    if not bool(valid.any()):
        return query_embeds.sum() * 0.0
    if released_masking:
        # all B rows and columns; missing rows are only ignored as targets (ignore_index = -1)
        logits = query_embeds @ text_embeds.t() / temperature  # (B, B)
        positions = torch.arange(len(attribute_ids), device=attribute_ids.device)
        target = torch.where(valid, positions, torch.full_like(positions, -1))
    else:
        q, t, ids = query_embeds[valid], text_embeds[valid], attribute_ids[valid]
        logits = q @ t.t() / temperature  # (K, K)
        same = ids[:, None] == ids[None, :]
        duplicate = same & ~torch.eye(len(ids), dtype=torch.bool, device=ids.device)
        logits = logits.masked_fill(duplicate, float("-inf"))
        target = torch.arange(len(ids), device=ids.device)
    loss = F.cross_entropy(logits, target, ignore_index=-1)
    if symmetric:
        loss = 0.5 * (loss + F.cross_entropy(logits.t(), target, ignore_index=-1))
    return loss


def condition_negatives(understanding_logits: Tensor, labels: Tensor) -> Tensor:
    """The negative class e^- of Eq. 7, per row.

    When the understanding head's prediction is right, e^- is its second-highest class; when it is wrong,
    e^- is the wrongly predicted class.
    """
    top2 = understanding_logits.topk(2, dim=-1).indices  # (B, 2)
    correct = top2[:, 0] == labels
    return torch.where(correct, top2[:, 1], top2[:, 0])


def emotion_condition_loss(
    condition_logits: Tensor, labels: Tensor, negatives: Tensor, margin: float = 0.1
) -> Tensor:
    """L_cond (Eq. 7): max(0, d(e^p, e^+) - d(e^p, e^-) + ξ), mean over the batch.

    e^p = softmax(condition_logits); d is the cosine distance to one-hot vectors, so
    d(e^p, onehot(k)) = 1 - e^p_k / ||e^p||.

    Args:
        condition_logits: (B, C) logits of the condition head on c.
        labels: (B,) positive class e^+.
        negatives: (B,) negative class e^- (``condition_negatives``).
        margin: ξ (0.1).
    """
    probs = condition_logits.softmax(dim=-1)
    norm = probs.norm(dim=-1).clamp_min(1e-12)
    d_pos = 1.0 - probs.gather(1, labels[:, None]).squeeze(1) / norm
    d_neg = 1.0 - probs.gather(1, negatives[:, None]).squeeze(1) / norm
    return F.relu(d_pos - d_neg + margin).mean()


def official_condition_loss(
    logits: Tensor, labels: Tensor, negatives: Tensor, margin: float = 0.5,
    ce_weight: float = 1e-3, hinge_weight: float = 1e-6,
) -> Tensor:
    """The released code's L_cond, on raw logits z (no softmax), mean over the batch:

        ce_weight · CE(z, e^+) + hinge_weight · max(0, margin + cos(z, onehot(e^-)) - cos(z, onehot(e^+)))

    with cos(z, onehot(k)) = z_k / ||z||. In the released code z is the frozen stage-1 emotion head's last
    layer (Linear(768, num_classes)) applied to the fused condition c, the weights are 1e-3 and 1e-6 and the
    margin 0.5.

    Args:
        logits: (B, C) raw logits z.
        labels: (B,) positive class e^+.
        negatives: (B,) negative class e^- (``condition_negatives``).
        margin: the triplet margin (0.5 in the released code).
        ce_weight, hinge_weight: the weights of the two terms.
    """
    norm = logits.norm(dim=-1).clamp_min(1e-8)  # the eps of torch's cosine similarity
    cos_pos = logits.gather(1, labels[:, None]).squeeze(1) / norm
    cos_neg = logits.gather(1, negatives[:, None]).squeeze(1) / norm
    hinge = F.relu(margin + cos_neg - cos_pos).mean()
    return ce_weight * F.cross_entropy(logits, labels) + hinge_weight * hinge


def diffusion_loss(model_pred: Tensor, target: Tensor) -> Tensor:
    """L_diff (Eq. 8): MSE between the UNet's prediction and the target (the noise, for ε-prediction)."""
    return F.mse_loss(model_pred.float(), target.float(), reduction="mean")


def weighted_sum(
    weights: Mapping[str, float], terms: Mapping[str, Callable[[], Tensor]]
) -> tuple[Tensor, dict[str, Tensor]]:
    """Σ_k weights[k] · terms[k](); a term whose weight is 0 is skipped and never computed.

    Args:
        weights: name -> weight (λ or γ).
        terms: name -> zero-argument callable computing that loss term.
    Returns:
        (total, {name: detached value}) for logging as ``train/loss_<name>``.
    """
    unknown = sorted(set(weights) - set(terms))
    if unknown:
        raise ValueError(f"loss weights for unknown terms {unknown}; known terms: {sorted(terms)}")
    total, logged = None, {}
    for name, weight in weights.items():
        if weight == 0:
            continue
        value = terms[name]()
        logged[name] = value.detach()
        total = weight * value if total is None else total + weight * value
    if total is None:
        raise ValueError("every loss weight is 0: nothing to optimise")
    return total, logged
