"""Generated images as training data: explicit feedback's manifest and the real/generated mix (docs/method.md section 7).

``FeedbackDataset`` reads the images listed in a ``manifest.jsonl`` (written by ``train/feedback.py`` or
``eval/generate.py``): the intended emotion is the label, and the images carry no attribute (``scene``
None, ``objects`` []), so their L_S / L_O terms are masked like any missing annotation. Their records say
``generated: True``; ``train/joint.py`` keeps them out of the diffusion and condition losses, so they
feed the understanding losses only.

``MixedDataset`` puts such images into a real training set at a proportion p of the mixed set (default
0.2; paper Table VIII tries 5, 10, 20, 30 %). Every real image stays; ``G' = round(p·R / (1 − p))`` slots are
added for R real images, filled with the generated images in a seeded order (a subset when there are more
than G', each repeated in turn when there are fewer), so that G' / (R + G') = p up to rounding.

Manifest line (one JSON object per image; paths relative to the manifest's folder)::

    {"path": "images/awe/awe_0003.png", "kind": "generate", "emotion": "awe", "seed": 1003, ...}

Symbol -> code name: p -> ``proportion``. Nothing here is adapted from another repository.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch.utils.data import Dataset

from uniemo.constants import EMOTIONS
from uniemo.data.base import EmotionDataset, ImageEntry, label_index, require_file

MANIFEST_NAME = "manifest.jsonl"
# Kinds whose intended emotion is one label; fusion images mix two emotions and are left out by default.
LABELLED_KINDS: tuple[str, ...] = ("generate", "transfer")


def read_manifest(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a ``manifest.jsonl`` (a file, or a folder holding one), with absolute ``path``s."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    require_file(path, "manifest")
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{number} is not a JSON object: {error}") from error
        if "path" not in record or "emotion" not in record:
            raise ValueError(f"{path}:{number} lacks 'path' or 'emotion'")
        record["path"] = str(path.parent / record["path"])
        records.append(record)
    return records


class FeedbackDataset(EmotionDataset):
    """Generated images with their intended emotion as label and no attributes; records say ``generated``.

    Args:
        entries: the images (``ImageEntry`` with path and label; scene and objects are ignored).
        labels: the label space (``EMOTIONS``).
        transform: PIL RGB image -> (3, H, W) tensor (the real training set's transform).
        on_error: ``"raise"`` or ``"skip"`` for unreadable images.
    """

    def __init__(self, entries: Sequence[ImageEntry], labels: Sequence[str] = EMOTIONS,
                 transform: Callable[[Image.Image], Any] | None = None, on_error: str = "raise"):
        # No attribute, ever: a generated image's scene and objects are unknown, so their losses are masked.
        bare = [ImageEntry(path=e.path, label=e.label, extra=dict(e.extra)) for e in entries]
        super().__init__(bare, labels, transform, on_error)

    @classmethod
    def from_manifest(cls, manifest: str | os.PathLike, labels: Sequence[str] = EMOTIONS,
                      transform: Callable[[Image.Image], Any] | None = None, on_error: str = "raise",
                      kinds: Sequence[str] = LABELLED_KINDS) -> FeedbackDataset:
        """Read the images of ``manifest`` whose ``kind`` is in ``kinds`` (a record without a kind counts)."""
        records = [r for r in read_manifest(manifest) if r.get("kind", "generate") in kinds]
        where = os.fspath(manifest)
        entries = [ImageEntry(path=r["path"], label=label_index(r["emotion"], labels, where),
                              extra={k: v for k, v in r.items() if k not in ("path", "emotion")})
                   for r in records]
        if not entries:
            raise ValueError(f"{where} lists no image of kind {', '.join(kinds)}")
        return cls(entries, labels, transform, on_error)

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        record = super().__getitem__(index)
        if record is not None:
            record["generated"] = True
        return record


def generated_slots(num_real: int, proportion: float) -> int:
    """G' = round(p·R / (1 − p)): the generated slots that make them a share p of the mixed set."""
    if not 0.0 <= proportion < 1.0:
        raise ValueError(f"proportion must lie in [0, 1), got {proportion}")
    return int(round(proportion * num_real / (1.0 - proportion)))


class MixedDataset(Dataset):
    """A real training set plus generated images making up ``proportion`` of the whole.

    Item i < R is real image i; item R + k is generated image ``order[k % G]``, ``order`` a seeded
    permutation of the G generated images. Records keep the base format (``generated`` tells them apart).

    Args:
        real: the real training set.
        generated: the generated images (a ``FeedbackDataset`` with the same transform).
        proportion: p, the generated share of the mixed set (0.2).
        seed: seeds the order in which generated images fill their slots.
    """

    def __init__(self, real: EmotionDataset, generated: EmotionDataset, proportion: float = 0.2, seed: int = 0):
        if tuple(real.labels) != tuple(generated.labels):
            raise ValueError(f"generated labels {generated.labels} differ from the real set's {real.labels}")
        if len(generated) == 0 and proportion > 0:
            raise ValueError("no generated image to mix in")
        self.real, self.generated, self.proportion = real, generated, proportion
        self.labels = real.labels
        self.num_generated_slots = generated_slots(len(real), proportion)
        self.order = torch.randperm(len(generated), generator=torch.Generator().manual_seed(seed)).tolist()

    def __len__(self) -> int:
        return len(self.real) + self.num_generated_slots

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        if index < len(self.real):
            return self.real[index]
        k = index - len(self.real)
        if not 0 <= k < self.num_generated_slots:
            raise IndexError(f"index {index} out of range for {len(self)} items")
        return self.generated[self.order[k % len(self.order)]]

    def generated_share(self) -> float:
        return self.num_generated_slots / max(1, len(self))

    def attribute_vocab(self) -> tuple[list[str], list[str]]:
        return self.real.attribute_vocab()  # generated images carry no attribute

    def __repr__(self) -> str:
        return (f"MixedDataset({len(self.real)} real + {self.num_generated_slots} generated slots from "
                f"{len(self.generated)} images, p={self.proportion})")
