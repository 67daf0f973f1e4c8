"""The record every dataset yields, the shared base class, and the batch collate (docs/method.md section 2).

All sources (EmoSet, FI, EmotionROI, Twitter I/II, custom folders, EmoShapes) are reduced to a list of
``ImageEntry`` (image path, label index, optional scene, object list) and read through one
``EmotionDataset``, so training and evaluation never branch on the dataset. A missing attribute stays
missing (``scene=None``, ``objects=[]``) and is masked out of its loss downstream; it is never replaced
by a dummy string that would then act as a negative.

Corrupt images are reported with their path: ``on_error="raise"`` raises ``UnreadableImageError``,
``on_error="skip"`` returns ``None`` from ``__getitem__``, which ``collate_records`` drops and counts.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image
from torch.utils.data import Dataset

# upright and UnreadableImageError are part of this module's interface (the demo and the loaders use them here)
from uniemo.data.images import UnreadableImageError, open_image, upright  # noqa: F401

logger = logging.getLogger(__name__)

ON_ERROR_CHOICES: tuple[str, ...] = ("raise", "skip")
IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})


@dataclass
class ImageEntry:
    """One image of a dataset.

    Args:
        path: absolute (or root-joined) path of the image file.
        label: index into the dataset's ``labels``.
        scene: the scene name, or ``None`` when the source has no scene for this image.
        objects: object names, possibly empty.
        extra: any further annotation (EmoSet's brightness, colorfulness, facial_expression,
            human_action); not used by the losses.
    """

    path: str
    label: int
    scene: str | None = None
    objects: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def load_image(path: str | os.PathLike) -> Image.Image:
    """A dataset's image file, fully decoded, upright and RGB (``open_image``, no limits), or
    ``UnreadableImageError`` naming the path."""
    return open_image(os.fspath(path))


def label_index(name: str, labels: Sequence[str], where: str) -> int:
    """Map a label name to its index by name (case-insensitive); ``where`` says which file/line it came from."""
    lookup = {label.lower(): i for i, label in enumerate(labels)}
    key = str(name).strip().lower()
    if key not in lookup:
        raise ValueError(f"unknown emotion {name!r} in {where}; expected one of {', '.join(labels)}")
    return lookup[key]


def clean_scene(value: Any) -> str | None:
    """A scene annotation as a non-empty string, or ``None`` when absent or empty."""
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def clean_objects(value: Any) -> list[str]:
    """An object annotation as a list of non-empty strings (a bare string becomes a one-item list)."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    return [str(item).strip() for item in value if str(item).strip()]


class EmotionDataset(Dataset):
    """A list of ``ImageEntry`` read as records; the base of every UniEmo dataset.

    Args:
        entries: the images, with label indices into ``labels``.
        labels: the label space, in class-index order (e.g. ``EMOTIONS``).
        transform: PIL RGB image -> (3, H, W) tensor; ``None`` returns the PIL image.
        on_error: ``"raise"`` raises ``UnreadableImageError`` on a corrupt image; ``"skip"`` logs a
            warning, records the path in ``skipped`` and returns ``None`` (see ``collate_records``).

    ``skipped`` is filled in the process that reads the image: with DataLoader workers it stays empty in
    the main process, so count skips from the batches' ``num_skipped`` instead.
    """

    def __init__(
        self,
        entries: Sequence[ImageEntry],
        labels: Sequence[str],
        transform: Callable[[Image.Image], Any] | None = None,
        on_error: str = "raise",
    ) -> None:
        if on_error not in ON_ERROR_CHOICES:
            raise ValueError(f"on_error must be one of {', '.join(ON_ERROR_CHOICES)}, got {on_error!r}")
        self.labels: tuple[str, ...] = tuple(labels)
        for entry in entries:
            if not 0 <= entry.label < len(self.labels):
                raise ValueError(
                    f"label {entry.label} of {entry.path} is outside the label space "
                    f"({len(self.labels)} labels: {', '.join(self.labels)})"
                )
        self.entries: list[ImageEntry] = list(entries)
        self.transform = transform
        self.on_error = on_error
        self.skipped: list[str] = []

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        """Returns ``{"pixel_values", "labels", "scene", "objects", "path", "index", "generated"}``, or ``None``
        when the image is unreadable and ``on_error="skip"``. ``pixel_values``: (3, H, W), or PIL if no
        transform. ``generated`` is ``False`` here; generated images (``uniemo.data.feedback``) set it.
        """
        entry = self.entries[index]
        try:
            image = load_image(entry.path)
        except UnreadableImageError as error:
            if self.on_error == "raise":
                raise
            logger.warning("skipping unreadable image %s (%s)", entry.path, error.__cause__)
            # One record per file, however many epochs revisit it.
            if entry.path not in self.skipped:
                self.skipped.append(entry.path)
            return None
        pixel_values = self.transform(image) if self.transform is not None else image
        return {
            "pixel_values": pixel_values,
            "labels": entry.label,
            "scene": entry.scene,
            "objects": list(entry.objects),
            "path": entry.path,
            "index": index,
            "generated": False,
        }

    def attribute_vocab(self) -> tuple[list[str], list[str]]:
        """Sorted unique scene names and object names present in the entries (for the attribute text base)."""
        scenes = {entry.scene for entry in self.entries if entry.scene is not None}
        objects = {name for entry in self.entries for name in entry.objects}
        return sorted(scenes), sorted(objects)

    def label_counts(self) -> list[int]:
        """Number of entries per label index, ``len(labels)`` long (zeros included)."""
        counts = [0] * len(self.labels)
        for entry in self.entries:
            counts[entry.label] += 1
        return counts

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} images, labels={list(self.labels)}, on_error={self.on_error!r})"


def collate_records(batch: Sequence[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Batch the records of ``EmotionDataset``, dropping the ``None`` of skipped images.

    Args:
        batch: records from ``EmotionDataset.__getitem__``; ``None`` marks a skipped image.

    Returns:
        ``{"pixel_values": (B, 3, H, W) (a list when the dataset has no transform), "labels": (B,) long,
        "scene": list[str | None], "objects": list[list[str]], "path": list[str], "index": (B,) long,
        "generated": (B,) bool, "num_skipped": int}``, or ``None`` when every image of the batch was
        skipped; the training and evaluation loops skip a ``None`` batch. ``generated`` marks images made by
        the model itself (explicit feedback, memory bank), which feed the understanding losses only.
    """
    records = [record for record in batch if record is not None]
    if not records:
        return None
    pixels = [record["pixel_values"] for record in records]
    return {
        "pixel_values": torch.stack(pixels) if isinstance(pixels[0], torch.Tensor) else pixels,  # (B, 3, H, W)
        "labels": torch.tensor([record["labels"] for record in records], dtype=torch.long),
        "scene": [record["scene"] for record in records],
        "objects": [record["objects"] for record in records],
        "path": [record["path"] for record in records],
        "index": torch.tensor([record["index"] for record in records], dtype=torch.long),
        # records from before the flag existed (or other sources) count as real images
        "generated": torch.tensor([bool(record.get("generated", False)) for record in records], dtype=torch.bool),
        "num_skipped": len(batch) - len(records),
    }


def list_images(directory: str | os.PathLike) -> list[str]:
    """Image files under ``directory`` (recursive), as sorted POSIX paths relative to it."""
    found = []
    for folder, _, files in os.walk(directory):
        for name in files:
            if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                found.append(os.path.relpath(os.path.join(folder, name), directory).replace(os.sep, "/"))
    return sorted(found)


def require_dir(root: str | os.PathLike, what: str) -> str:
    """Return ``root`` as a string, or raise ``FileNotFoundError`` naming it when it is not a directory."""
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{what} root {root} does not exist or is not a directory")
    return root


def require_file(path: str | os.PathLike, what: str) -> str:
    """Return ``path`` as a string, or raise ``FileNotFoundError`` naming it when it is missing."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} {path} not found")
    return path
