"""uniemo/metrics.py: pure functions checked against hand-computed values."""

import math

import pytest
import torch

from uniemo.metrics import (
    align_logits,
    classification_report,
    collapse_to_binary,
    fold_summary,
    normalize_confusion,
)


def test_classification_report_matches_hand_counts():
    # predictions (argmax): 0, 1, 1, 2 against labels 0, 1, 2, 2
    logits = torch.tensor([[3.0, 1, 0], [0, 2, 1], [0, 5, 1], [1, 0, 4]])
    labels = torch.tensor([0, 1, 2, 2])
    report = classification_report(logits, labels, ["a", "b", "c"])
    assert report["top1"] == pytest.approx(3 / 4)
    assert report["confusion_matrix"] == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    assert report["per_class_accuracy"] == {"a": 1.0, "b": 1.0, "c": 0.5}
    assert report["mean_class_accuracy"] == pytest.approx(2.5 / 3)
    assert report["top5"] == 1.0  # k clipped to 3 classes


def test_align_logits_reorders_by_name():
    logits = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    out = align_logits(logits, ["awe", "Fear", "amusement"], ["amusement", "awe", "fear"])
    assert out.tolist() == [[3.0, 1.0, 2.0], [6.0, 4.0, 5.0]]
    # same order: unchanged
    assert torch.equal(align_logits(logits, ["a", "b", "c"], ["a", "b", "c"]), logits)
    # a subset of the columns is allowed (used after a binary collapse)
    assert align_logits(logits, ["a", "b", "c"], ["c"]).tolist() == [[3.0], [6.0]]
    with pytest.raises(ValueError, match="joy"):
        align_logits(logits, ["a", "b", "c"], ["a", "joy"])


def test_collapse_to_binary_sums_probabilities():
    probs = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.5, 0.0, 0.25, 0.25]])
    binary, labels = collapse_to_binary(probs, torch.tensor([1, 3]), ["amusement", "anger", "awe", "fear"],
                                        ["amusement", "awe"])
    assert binary.flatten().tolist() == pytest.approx([0.6, 0.4, 0.25, 0.75])
    assert labels.tolist() == [0, 0]


def test_normalize_confusion_rows_sum_to_one_and_empty_rows_stay_zero():
    cm = torch.tensor([[3, 1], [0, 0]])
    out = normalize_confusion(cm)
    assert out.tolist() == [[0.75, 0.25], [0.0, 0.0]]
    assert normalize_confusion([[2, 2, 0], [0, 1, 4], [5, 0, 5]])[2].tolist() == [0.5, 0.0, 0.5]


def test_fold_summary_by_hand():
    summary = fold_summary([0.8, 0.9, 1.0, 0.7, 0.6])
    assert summary["mean"] == pytest.approx(0.8)
    # population std: sqrt(mean of (0, .01, .04, .01, .04)) = sqrt(0.02)
    assert summary["std"] == pytest.approx(math.sqrt(0.02))
    assert (summary["min"], summary["max"], summary["num_folds"]) == (0.6, 1.0, 5)
    assert fold_summary([0.5])["std"] == 0.0
    with pytest.raises(ValueError):
        fold_summary([])
