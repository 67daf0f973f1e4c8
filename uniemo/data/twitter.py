"""Twitter I and Twitter II: binary image sentiment with seeded stratified k-fold cross-validation
(docs/method.md section 2).

Twitter I (You et al. AAAI 2015), as distributed::

    root/images/<filename>
    root/ground_truth/twitter_{five,four,three}_agrees.txt    "<filename> <label>" per line

Twitter II (Borth et al. ACM MM 2013) has no verified on-disk format; this loader assumes the same
convention with a single list::

    root/images/<filename>
    root/labels.txt                                           "<filename> <label>" per line

Labels are 1 = positive, 0 = negative (the words ``positive`` / ``negative`` are accepted too), giving
indices into ``SENTIMENTS`` = (negative, positive). Fields are whitespace-separated, so file names must not
contain spaces. The protocol is 5-fold cross-validation with mean accuracy: images are assigned to folds
per class (stratified) from ``seed``; ``split="test"`` is fold ``fold`` and ``split="train"`` the others.
There are no attributes (``scene=None``, ``objects=[]``).
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable, Sequence
from typing import Any

from PIL import Image

from uniemo.constants import SENTIMENTS
from uniemo.data.base import EmotionDataset, ImageEntry, require_dir, require_file

logger = logging.getLogger(__name__)

TWITTER_VARIANTS: tuple[str, ...] = ("twitter1", "twitter2")
TWITTER1_SUBSETS: tuple[str, ...] = ("five", "four", "three")
TWITTER_SPLITS: tuple[str, ...] = ("train", "test")


def assign_folds(names: Sequence[str], labels: Sequence[int], num_folds: int, seed: int) -> list[int]:
    """Stratified fold index for each image, deterministic from ``seed`` and independent of input order.

    Args:
        names: image file names (the sort key that makes the result independent of list order).
        labels: class index per image.
        num_folds: number of folds (at least 2).
        seed: the assignment's seed.

    Returns:
        One fold index in ``[0, num_folds)`` per image. Each class is shuffled and dealt round-robin; the
        deal continues across classes, so fold sizes differ by at most one overall and per class.
    """
    if num_folds < 2:
        raise ValueError(f"num_folds must be at least 2, got {num_folds}")
    folds = [0] * len(names)
    position = 0
    for label in sorted(set(labels)):
        members = sorted((i for i in range(len(names)) if labels[i] == label), key=lambda i: names[i])
        random.Random(f"twitter:{seed}:{label}").shuffle(members)
        for i in members:
            folds[i] = position % num_folds
            position += 1
    return folds


def _parse_label(value: str, where: str) -> int:
    value = value.strip().lower()
    if value in ("0", "1"):
        return int(value)
    if value in SENTIMENTS:
        return SENTIMENTS.index(value)
    raise ValueError(f"{where}: label must be 1 (positive) or 0 (negative), got {value!r}")


def read_label_list(path: str) -> list[tuple[str, int]]:
    """``(filename, label)`` pairs from a ``<filename> <label>`` list; blank and ``#`` lines are skipped."""
    pairs: list[tuple[str, int]] = []
    seen: set[str] = set()
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) != 2:
                raise ValueError(f"{path} line {line_number}: expected '<filename> <label>', got {line!r}")
            name, label = parts[0], _parse_label(parts[1], f"{path} line {line_number}")
            if name in seen:
                # A repeated image would sit in two folds and leak test images into training.
                logger.warning("%s line %d: %s listed again; keeping its first label", path, line_number, name)
                continue
            seen.add(name)
            pairs.append((name, label))
    return pairs


class TwitterDataset(EmotionDataset):
    """One cross-validation split of Twitter I or Twitter II.

    Args:
        root: the dataset folder holding ``images/`` and the label list(s).
        fold: the test fold, in ``[0, num_folds)``.
        split: ``"test"`` (fold ``fold``) or ``"train"`` (all other folds).
        transform: PIL RGB image -> (3, H, W) tensor; ``None`` returns PIL images.
        on_error: ``"raise"`` or ``"skip"`` for unreadable images (see ``EmotionDataset``).
        subset: Twitter I agreement subset, ``"five"``, ``"four"`` or ``"three"`` (ignored for Twitter II).
        seed: seed of the fold assignment.
        num_folds: number of folds.
        variant: ``"twitter1"`` or ``"twitter2"``.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        fold: int,
        split: str,
        transform: Callable[[Image.Image], Any] | None = None,
        on_error: str = "raise",
        subset: str = "five",
        seed: int = 0,
        num_folds: int = 5,
        variant: str = "twitter1",
    ) -> None:
        if variant not in TWITTER_VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(TWITTER_VARIANTS)}, got {variant!r}")
        if split not in TWITTER_SPLITS:
            raise ValueError(f"Twitter split must be one of {', '.join(TWITTER_SPLITS)}, got {split!r}")
        if not 0 <= fold < num_folds:
            raise ValueError(f"fold must be in [0, {num_folds}), got {fold}")
        self.root = require_dir(root, "Twitter")
        if variant == "twitter1":
            if subset not in TWITTER1_SUBSETS:
                raise ValueError(f"Twitter I subset must be one of {', '.join(TWITTER1_SUBSETS)}, got {subset!r}")
            list_path = os.path.join(self.root, "ground_truth", f"twitter_{subset}_agrees.txt")
        else:
            list_path = os.path.join(self.root, "labels.txt")
        pairs = read_label_list(require_file(list_path, f"{variant} label list"))
        if not pairs:
            raise ValueError(f"{list_path} lists no images")
        names = [name for name, _ in pairs]
        labels = [label for _, label in pairs]
        self.folds = assign_folds(names, labels, num_folds, seed)
        self.fold, self.split, self.variant = fold, split, variant
        entries = [
            ImageEntry(path=os.path.join(self.root, "images", name), label=label)
            for name, label, image_fold in zip(names, labels, self.folds, strict=True)
            if (image_fold == fold) == (split == "test")
        ]
        super().__init__(entries, SENTIMENTS, transform=transform, on_error=on_error)
