"""Pure metric functions: no model loading, no CLI. Unit-tested.

Paper -> code: accuracy -> ``classification_report``; 2-class collapse -> ``collapse_to_binary``;
zero-shot FI (labels matched by name) -> ``align_logits``; Twitter 5-fold mean -> ``fold_summary``.

Generation metrics (definitions from EmoGen's evaluation code, with its quirks fixed unless asked for): FID ->
``feature_statistics`` + ``frechet_distance`` (per emotion, and on the pooled statistics of all emotions); LPIPS
and Sem-D pairs -> ``within_emotion_pairs`` (EmoGen's leaking pools: ``accumulating_pool_pairs``), averaged per
emotion then over emotions by ``emotion_mean``; Sem-D -> ``semantic_diversity``; Sem-C -> ``semantic_clarity``;
Emo-A -> ``emotion_accuracy``. Used by train/understanding.py, eval/understanding.py and eval/score.py.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor


def confusion_matrix(predictions: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """(C, C) counts; row = true class, column = predicted class."""
    index = labels.long() * num_classes + predictions.long()
    return torch.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def top_k_accuracy(logits: Tensor, labels: Tensor, k: int) -> float:
    """Fraction of rows whose label is among the k highest logits (k clipped to the number of classes)."""
    if len(labels) == 0:
        return float("nan")
    k = min(k, logits.shape[1])
    top = logits.topk(k, dim=1).indices
    return (top == labels[:, None]).any(dim=1).float().mean().item()


def classification_report(logits: Tensor, labels: Tensor, class_names: Sequence[str]) -> dict:
    """Top-1 / top-5, per-class accuracy and the confusion matrix, as plain JSON-able values.

    Args:
        logits: (N, C) scores (logits or probabilities).
        labels: (N,) true class indices.
        class_names: the C label names, in index order.
    """
    logits, labels = logits.float().cpu(), labels.long().cpu()
    C = len(class_names)
    cm = confusion_matrix(logits.argmax(dim=1), labels, C)
    support = cm.sum(dim=1)
    per_class = {
        name: (cm[i, i].item() / support[i].item()) if support[i] > 0 else None
        for i, name in enumerate(class_names)
    }
    return {
        "num_samples": int(len(labels)),
        "top1": top_k_accuracy(logits, labels, 1),
        "top5": top_k_accuracy(logits, labels, 5),
        "per_class_accuracy": per_class,
        "mean_class_accuracy": sum(v for v in per_class.values() if v is not None)
        / max(1, sum(v is not None for v in per_class.values())),
        "confusion_matrix": cm.tolist(),
        "labels": list(class_names),
    }


def collapse_to_binary(
    probs: Tensor, labels: Tensor, class_names: Sequence[str], positive: Sequence[str]
) -> tuple[Tensor, Tensor]:
    """Collapse a C-way prediction to (negative, positive) by summing class probabilities.

    Returns:
        (N, 2) probabilities [p(negative), p(positive)] and the (N,) binary labels (1 = positive).
    """
    is_pos = torch.tensor([name in positive for name in class_names])
    p_pos = probs[:, is_pos].sum(dim=1)
    p_neg = probs[:, ~is_pos].sum(dim=1)
    return torch.stack([p_neg, p_pos], dim=1), is_pos[labels.long()].long()


def align_logits(logits: Tensor, source_names: Sequence[str], target_names: Sequence[str]) -> Tensor:
    """Reorder score columns from one label order to another, matching names case-insensitively.

    Used when a model and a dataset share their labels in a different order (an EmoSet model on FI, whose
    folders are often alphabetical): indices must never be compared across label lists, only names.

    Args:
        logits: (N, S) scores in ``source_names`` order.
        source_names: the S label names of the columns.
        target_names: the T wanted label names, each one present in ``source_names``.

    Returns:
        (N, T) scores, column j being the source column named ``target_names[j]``.
    """
    lookup = {name.lower(): i for i, name in enumerate(source_names)}
    missing = [name for name in target_names if name.lower() not in lookup]
    if missing:
        raise ValueError(f"label(s) {missing} are not among the scores' labels {list(source_names)}")
    order = torch.tensor([lookup[name.lower()] for name in target_names], dtype=torch.long)
    return logits[:, order.to(logits.device)]


def normalize_confusion(cm: Tensor) -> Tensor:
    """Row-normalised confusion matrix: each true class's row sums to 1 (an empty row stays all zeros).

    Args:
        cm: (C, C) counts, row = true class.

    Returns:
        (C, C) float fractions; the diagonal is the per-class accuracy.
    """
    cm = torch.as_tensor(cm, dtype=torch.float64)
    # clamp_min keeps classes absent from the split at 0 instead of 0/0 = NaN
    return cm / cm.sum(dim=1, keepdim=True).clamp_min(1.0)


def fold_summary(values: Sequence[float]) -> dict:
    """Mean, population standard deviation, min and max of per-fold numbers (cross-validation report).

    Args:
        values: one number per fold, e.g. the five Twitter test-fold accuracies.

    Returns:
        ``{"mean", "std", "min", "max", "num_folds"}``; ``std`` uses ddof=0, the spread of these folds
        rather than an estimate for unseen ones.
    """
    if len(values) == 0:
        raise ValueError("fold_summary needs at least one value")
    x = torch.tensor([float(v) for v in values], dtype=torch.float64)
    return {
        "mean": x.mean().item(),
        "std": x.std(correction=0).item(),
        "min": x.min().item(),
        "max": x.max().item(),
        "num_folds": len(values),
    }


# ----------------------------------------------------------------------------------------------------------
# Generation metrics


def feature_statistics(features: Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of (N, D) features in float64 (the sufficient statistics of FID).

    Returns:
        (mu (D,), sigma (D, D)); the covariance is unbiased (N − 1), as torch-fidelity and torchmetrics compute
        it. With N = 1 the covariance is all zeros.
    """
    x = features.detach().cpu().double().numpy() if isinstance(features, Tensor) else np.asarray(features, np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"features must be a non-empty (N, D) array, got shape {x.shape}")
    mu = x.mean(axis=0)
    sigma = np.cov(x, rowvar=False) if len(x) > 1 else np.zeros((x.shape[1], x.shape[1]))
    return mu, np.atleast_2d(sigma)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """The Fréchet distance of two Gaussians: |mu1 − mu2|² + tr(S1 + S2 − 2 (S1 S2)^½).

    tr((S1 S2)^½) is the sum of the square roots of the eigenvalues of S1 S2 (real and non-negative in exact
    arithmetic; tiny negative or complex parts from rounding are dropped), the route torch-fidelity and EmoGen's
    FID script take, which needs no matrix square root.

    Args:
        mu1, mu2: (D,) means.
        sigma1, sigma2: (D, D) covariances.

    Returns:
        The distance (>= 0 up to rounding).
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"shape mismatch: mu {mu1.shape} / {mu2.shape}, sigma {sigma1.shape} / {sigma2.shape}")
    diff = mu1 - mu2
    eigenvalues = np.linalg.eigvals(sigma1 @ sigma2).astype(np.complex128)
    tr_covmean = np.sqrt(eigenvalues).real.sum()
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)


def within_emotion_pairs(labels: Tensor | Sequence[int], num_pairs: int, seed: int) -> Tensor:
    """Random pairs of two different images of the same emotion, ``num_pairs`` per emotion, seeded.

    For each emotion present (ascending label), each pair is two distinct positions drawn uniformly from that
    emotion's images (pairs are drawn independently, so a pair may repeat). An emotion with fewer than two
    images gets no pair. The same labels and seed always give the same pairs.

    Args:
        labels: (N,) emotion index of each image.
        num_pairs: pairs per emotion.
        seed: seeds a private generator (the global RNG is untouched).

    Returns:
        (P, 2) long indices into the N images; both images of a row share their label.
    """
    labels = torch.as_tensor(labels, dtype=torch.long).cpu()
    g = torch.Generator().manual_seed(seed)
    rows = []
    for emotion in torch.unique(labels).tolist():
        members = torch.nonzero(labels == emotion).flatten()
        if len(members) < 2 or num_pairs < 1:
            continue
        first = torch.randint(len(members), (num_pairs,), generator=g)
        # an offset in 1..n-1 makes the second image always a different one, still uniform over the others
        second = (first + torch.randint(1, len(members), (num_pairs,), generator=g)) % len(members)
        rows.append(torch.stack([members[first], members[second]], dim=1))
    return torch.cat(rows) if rows else torch.zeros(0, 2, dtype=torch.long)


def accumulating_pool_pairs(labels: Tensor | Sequence[int], num_pairs: int, seed: int) -> tuple[Tensor, Tensor]:
    """EmoGen's LPIPS / Sem-D pairs, quirk included: the pool is not reset between emotions.

    EmoGen's script appends each emotion's images to one list and samples emotion k's pairs from it, so the
    pairs of emotion k come from emotions 0..k (only the first is truly within one emotion). Reproduced for
    ``--emogen-compat`` only, seeded here (EmoGen's ``random`` is not).

    Returns:
        (pairs (P, 2), pair_emotion (P,)): the indices, and the emotion each pair is reported under.
    """
    labels = torch.as_tensor(labels, dtype=torch.long).cpu()
    g = torch.Generator().manual_seed(seed)
    rows, owners = [], []
    for emotion in torch.unique(labels).tolist():
        pool = torch.nonzero(labels <= emotion).flatten()
        if len(pool) < 2 or num_pairs < 1:
            continue
        first = torch.randint(len(pool), (num_pairs,), generator=g)
        second = (first + torch.randint(1, len(pool), (num_pairs,), generator=g)) % len(pool)
        rows.append(torch.stack([pool[first], pool[second]], dim=1))
        owners.append(torch.full((num_pairs,), emotion, dtype=torch.long))
    if not rows:
        return torch.zeros(0, 2, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    return torch.cat(rows), torch.cat(owners)


def emotion_mean(values: Tensor | Sequence[float], groups: Tensor | Sequence[int]) -> tuple[float, dict[int, float]]:
    """Mean per group, then the unweighted mean over the groups present (EmoGen's LPIPS / Sem-D averaging).

    Args:
        values: (P,) one value per pair (or image).
        groups: (P,) the emotion of each value.

    Returns:
        (overall, {group: mean}); ``overall`` is NaN when there is no value.
    """
    values = torch.as_tensor(values, dtype=torch.float64).cpu()
    groups = torch.as_tensor(groups, dtype=torch.long).cpu()
    if values.shape != groups.shape:
        raise ValueError(f"{tuple(values.shape)} values but {tuple(groups.shape)} groups")
    per_group = {int(g): values[groups == g].mean().item() for g in torch.unique(groups).tolist()}
    overall = float(np.mean(list(per_group.values()))) if per_group else float("nan")
    return overall, per_group


def semantic_diversity(embeds: Tensor, pairs: Tensor, pair_groups: Tensor | None = None) -> dict:
    """Sem-D: distances between the CLIP image embeddings of each pair, averaged per emotion then overall.

    ``cosine`` = mean of 1 − cos(f_a, f_b) (EmoGen's "cos" number); ``mse`` = mean over pairs of the mean over
    dimensions of (f_a − f_b)² (EmoGen's Sem-D column). Pass the raw, unnormalised projected features for the
    MSE to match EmoGen's definition (cosine does not depend on it).

    Args:
        embeds: (N, E) image embeddings.
        pairs: (P, 2) indices into ``embeds`` (``within_emotion_pairs``).
        pair_groups: (P,) emotion of each pair; default: the pair's index in one group (plain mean).

    Returns:
        ``{"cosine": float, "mse": float, "per_group": {g: {"cosine", "mse"}}, "num_pairs": P}``.
    """
    pairs = torch.as_tensor(pairs, dtype=torch.long)
    a, b = embeds[pairs[:, 0]].double(), embeds[pairs[:, 1]].double()
    cosine = 1.0 - torch.nn.functional.cosine_similarity(a, b, dim=-1)  # (P,)
    mse = ((a - b) ** 2).mean(dim=-1)  # (P,)
    groups = torch.zeros(len(pairs), dtype=torch.long) if pair_groups is None else torch.as_tensor(pair_groups)
    cos_all, cos_per = emotion_mean(cosine, groups)
    mse_all, mse_per = emotion_mean(mse, groups)
    return {"cosine": cos_all, "mse": mse_all, "num_pairs": int(len(pairs)),
            "per_group": {g: {"cosine": cos_per[g], "mse": mse_per[g]} for g in cos_per}}


def semantic_clarity(probs_a: Tensor, probs_b: Tensor | None = None) -> float:
    """Sem-C: per image the larger of the top-1 probabilities of two classifiers, averaged over images.

    Args:
        probs_a: (N, A) softmax probabilities (EmoGen: a Places365 ResNet-50; or CLIP zero-shot over scenes).
        probs_b: (N, B) softmax probabilities (an ImageNet ResNet-50; or CLIP over objects), optional.

    Returns:
        The mean over the N images.
    """
    top = probs_a.max(dim=-1).values.double()
    if probs_b is not None:
        if len(probs_b) != len(probs_a):
            raise ValueError(f"{len(probs_a)} rows of probs_a but {len(probs_b)} of probs_b")
        top = torch.maximum(top, probs_b.max(dim=-1).values.double())
    if len(top) == 0:
        raise ValueError("semantic clarity of an empty set")
    return top.mean().item()


def emotion_accuracy(logits: Tensor, labels: Tensor, num_classes: int | None = None) -> dict:
    """Emo-A: top-1 accuracy of an emotion classifier against the intended emotion, with EmoGen's extras.

    Args:
        logits: (N, C) classifier scores.
        labels: (N,) intended emotion indices.
        num_classes: C (default ``logits.shape[1]``).

    Returns:
        ``{"accuracy": float, "score": mean softmax probability of the intended emotion (EmoGen's emo_score),
        "per_class_accuracy": {c: float}, "num_images": N}``.
    """
    labels = torch.as_tensor(labels, dtype=torch.long).cpu()
    logits = logits.float().cpu()
    if len(labels) == 0:
        raise ValueError("emotion accuracy of an empty set")
    correct = (logits.argmax(dim=1) == labels).double()
    score = logits.softmax(dim=1).gather(1, labels[:, None]).squeeze(1).double()
    C = num_classes or logits.shape[1]
    per_class = {c: correct[labels == c].mean().item() for c in range(C) if bool((labels == c).any())}
    return {"accuracy": correct.mean().item(), "score": score.mean().item(), "per_class_accuracy": per_class,
            "num_images": int(len(labels))}
