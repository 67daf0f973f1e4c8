"""Pure metric functions (METHOD.md section 8): no model loading, no CLI. Unit-tested.

Paper -> code: accuracy -> ``classification_report``; 2-class collapse -> ``collapse_to_binary``.
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
