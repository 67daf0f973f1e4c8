"""EmoSet-118K (and EmoShapes, written in the same layout) as an ``EmotionDataset`` (docs/method.md section 2).

Layout::

    root/info.json                                   optional here; label maps of the official release
    root/{train,val,test}.json                       split files
    root/image/<emotion>/<emotion>_NNNNN.jpg
    root/annotation/<emotion>/<emotion>_NNNNN.json   optional per image

Split entries come in two forms, ``[emotion, image_path, annotation_path]`` (the shipped zip) and
``[emotion, image_id, image_path, annotation_path]`` (the README); paths are relative to ``root``.
Labels are mapped by name onto ``EMOTIONS``, never by file order. Every annotation key is optional:
``scene`` (string) becomes ``ImageEntry.scene`` or ``None``, ``object`` (list) becomes
``ImageEntry.objects`` or ``[]``; brightness, colorfulness, facial_expression and human_action go to
``ImageEntry.extra``. ``num_classes=2`` collapses to binary sentiment (amusement, awe, contentment,
excitement -> positive = 1; the rest -> negative = 0), matching ``SENTIMENTS``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from typing import Any

from PIL import Image

from uniemo.constants import EMOTIONS, SENTIMENTS, emotion_to_sentiment
from uniemo.data.base import (
    EmotionDataset,
    ImageEntry,
    clean_objects,
    clean_scene,
    label_index,
    require_dir,
    require_file,
)

logger = logging.getLogger(__name__)

EMOSET_SPLITS: tuple[str, ...] = ("train", "val", "test")
# Annotation keys kept on the entry but not used by the losses.
EXTRA_KEYS: tuple[str, ...] = ("brightness", "colorfulness", "facial_expression", "human_action")


class EmoSetDataset(EmotionDataset):
    """EmoSet-118K (or EmoShapes) split read from its split JSON and per-image annotation files.

    Args:
        root: the dataset folder holding ``train.json`` etc.
        split: ``"train"``, ``"val"`` or ``"test"``.
        transform: PIL RGB image -> (3, H, W) tensor; ``None`` returns PIL images.
        on_error: ``"raise"`` or ``"skip"`` for unreadable images (see ``EmotionDataset``). In ``"skip"``
            mode an unparsable annotation file is also tolerated (warned about, attributes left missing).
        num_classes: 8 for the emotions, 2 for the positive/negative collapse.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str,
        transform: Callable[[Image.Image], Any] | None = None,
        on_error: str = "raise",
        num_classes: int = 8,
    ) -> None:
        if split not in EMOSET_SPLITS:
            raise ValueError(f"EmoSet split must be one of {', '.join(EMOSET_SPLITS)}, got {split!r}")
        if num_classes not in (8, 2):
            raise ValueError(f"num_classes must be 8 (emotions) or 2 (sentiment), got {num_classes}")
        self.root = require_dir(root, "EmoSet")
        self.split = split
        self.num_classes = num_classes
        self.info = self._read_info()
        split_path = require_file(os.path.join(self.root, f"{split}.json"), "EmoSet split file")
        with open(split_path, encoding="utf-8") as f:
            rows = json.load(f)
        if not isinstance(rows, list):
            raise TypeError(f"{split_path} must hold a JSON list of entries, got {type(rows).__name__}")
        strict = on_error == "raise"
        entries = [self._entry(row, f"{split_path} entry {i}", strict) for i, row in enumerate(rows)]
        labels = SENTIMENTS if num_classes == 2 else EMOTIONS
        super().__init__(entries, labels, transform=transform, on_error=on_error)

    def _read_info(self) -> dict[str, Any]:
        """``info.json`` if present. Labels are mapped by name anyway; a differing order is only reported."""
        path = os.path.join(self.root, "info.json")
        if not os.path.isfile(path):
            return {}
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
        label2idx = info.get("emotion", {}).get("label2idx") if isinstance(info, dict) else None
        if isinstance(label2idx, dict) and sorted(label2idx, key=label2idx.get) != list(EMOTIONS):
            logger.warning(
                "%s orders emotions as %s; UniEmo maps labels by name onto %s",
                path,
                sorted(label2idx, key=label2idx.get),
                list(EMOTIONS),
            )
        return info

    def _entry(self, row: Any, where: str, strict: bool) -> ImageEntry:
        if not isinstance(row, (list, tuple)) or len(row) not in (3, 4):
            raise ValueError(
                f"{where}: expected [emotion, image_path, annotation_path] or "
                f"[emotion, image_id, image_path, annotation_path], got {row!r}"
            )
        # The 4-field form carries an image id in position 1; the paths are always the last two fields.
        emotion, image_rel, annotation_rel = row[0], row[-2], row[-1]
        emotion = EMOTIONS[label_index(emotion, EMOTIONS, where)]
        if self.num_classes == 2:
            label = SENTIMENTS.index(emotion_to_sentiment(emotion))
        else:
            label = EMOTIONS.index(emotion)
        annotation = self._read_annotation(os.path.join(self.root, annotation_rel), strict)
        return ImageEntry(
            path=os.path.join(self.root, image_rel),
            label=label,
            scene=clean_scene(annotation.get("scene")),
            objects=clean_objects(annotation.get("object")),
            extra={key: annotation[key] for key in EXTRA_KEYS if annotation.get(key) is not None},
        )

    @staticmethod
    def _read_annotation(path: str, strict: bool) -> dict[str, Any]:
        """The annotation dict, or ``{}`` when the file is missing (every attribute then counts as missing)."""
        if not os.path.isfile(path):
            return {}
        try:
            with open(path, encoding="utf-8") as f:
                annotation = json.load(f)
        except (ValueError, UnicodeDecodeError) as error:  # JSONDecodeError is a ValueError
            problem = str(error)
        else:
            if isinstance(annotation, dict):
                return annotation
            problem = f"expected a JSON object, got {type(annotation).__name__}"
        if strict:
            raise ValueError(f"cannot parse EmoSet annotation {path}: {problem}")
        logger.warning("ignoring unparsable annotation %s (%s)", path, problem)
        return {}
