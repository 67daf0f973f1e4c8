"""Dataset loaders: every source yields the same record (docs/method.md section 2).

``build_dataset(name, root, split, ...)`` picks the loader by name; ``collate_records`` batches the records
and drops images skipped as unreadable. Only torch, torchvision and PIL are imported here (no gradio or
diffusers), so train/, eval/ and the tests can import this package cheaply.

The EmoShapes generator (the package ``uniemo.data.emoshapes``, the synthetic world of docs/EMOSHAPES.md)
lives next to these loaders; its output is in EmoSet's layout, so ``build_dataset("emoshapes", ...)`` reads it
with ``EmoSetDataset``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from PIL import Image

from uniemo.data.base import (
    EmotionDataset,
    ImageEntry,
    UnreadableImageError,
    collate_records,
    load_image,
)
from uniemo.data.emoset import EmoSetDataset
from uniemo.data.emotionroi import EmotionROIDataset
from uniemo.data.fi import FIDataset
from uniemo.data.folder import ImageFolderDataset
from uniemo.data.transforms import build_transform, to_rgb
from uniemo.data.twitter import TwitterDataset, assign_folds

from uniemo.data.emoshapes import EmoShapesConfig, caption_of, emotion_of, generate_emoshapes, render  # noqa: F401

DATASET_NAMES: tuple[str, ...] = ("emoset", "emoshapes", "fi", "emotionroi", "twitter1", "twitter2", "folder")


def build_dataset(
    name: str,
    root: str | os.PathLike,
    split: str | None,
    transform: Callable[[Image.Image], Any] | None = None,
    on_error: str = "raise",
    **kwargs: Any,
) -> EmotionDataset:
    """Build a dataset by name.

    Args:
        name: one of ``DATASET_NAMES``.
        root: the dataset folder.
        split: ``"train"``, ``"val"`` or ``"test"`` as the source provides them (EmotionROI and Twitter have
            no ``"val"``); for ``"folder"`` it may be ``None`` (every line of metadata.jsonl).
        transform: PIL RGB image -> (3, H, W) tensor; ``None`` returns PIL images.
        on_error: ``"raise"`` or ``"skip"`` for unreadable images.
        **kwargs: loader-specific options: ``num_classes`` (emoset, emoshapes), ``seed``, ``split_file``,
            ``fractions`` (fi), ``fold`` (default 0), ``subset``, ``seed``, ``num_folds`` (twitter1/2),
            ``labels`` (folder).

    Returns:
        An ``EmotionDataset``.
    """
    key = name.lower()
    if key in ("emoset", "emoshapes"):
        return EmoSetDataset(root, split, transform=transform, on_error=on_error, **kwargs)
    if key == "fi":
        return FIDataset(root, split, transform=transform, on_error=on_error, **kwargs)
    if key == "emotionroi":
        return EmotionROIDataset(root, split, transform=transform, on_error=on_error, **kwargs)
    if key in ("twitter1", "twitter2"):
        fold = kwargs.pop("fold", 0)
        return TwitterDataset(root, fold, split, transform=transform, on_error=on_error, variant=key, **kwargs)
    if key == "folder":
        return ImageFolderDataset(root, transform=transform, on_error=on_error, split=split, **kwargs)
    raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASET_NAMES)}")


__all__ = [
    "DATASET_NAMES",
    "EmoSetDataset",
    "EmotionDataset",
    "EmotionROIDataset",
    "FIDataset",
    "ImageEntry",
    "ImageFolderDataset",
    "TwitterDataset",
    "UnreadableImageError",
    "assign_folds",
    "build_dataset",
    "build_transform",
    "collate_records",
    "load_image",
    "to_rgb",
]
