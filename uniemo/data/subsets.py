"""Fewer labelled images: a seeded subset of a training split with the same number of images per emotion.

Used by ``data.train_per_class`` (stage 1, the probe, stage 2) and so by the claims table's low-data regime,
where the paper's extra supervision (expert queries, joint training, generated images) has the most room to
help. The draw depends only on the entries' labels and order and on the seed, never on the run's other settings,
so two runs with the same ``train_subset_seed`` see the same images.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence

from uniemo.data.base import ImageEntry


def per_class_subset(entries: Sequence[ImageEntry], per_class: int, seed: int) -> list[ImageEntry]:
    """``per_class`` entries of every label (all of a label that has fewer), drawn without replacement.

    The kept entries stay in their original order. Each label draws from its own ``random.Random`` seeded by
    ``(seed, label)``, so the images kept for one emotion do not change when another emotion has more or fewer.

    Raises:
        ValueError: ``per_class`` below 1.
    """
    if per_class < 1:
        raise ValueError(f"train_per_class must be >= 1, got {per_class}")
    by_label: dict[int, list[int]] = defaultdict(list)
    for i, entry in enumerate(entries):
        by_label[entry.label].append(i)
    kept: set[int] = set()
    for label, indices in by_label.items():
        rng = random.Random(f"{seed}:{label}")
        kept.update(indices if len(indices) <= per_class else rng.sample(indices, per_class))
    return [entries[i] for i in sorted(kept)]
