"""Pure metric functions (METHOD.md section 8): no model loading, no CLI. Unit-tested.

Paper -> code: accuracy -> ``classification_report``; 2-class collapse -> ``collapse_to_binary``;
zero-shot FI (labels matched by name) -> ``align_logits``; Twitter 5-fold mean -> ``fold_summary``.
"""

from __future__ import annotations

from typing import Sequence

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
