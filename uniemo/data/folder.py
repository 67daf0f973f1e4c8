"""A user's own image folder, in the Hugging Face ``imagefolder`` convention (docs/method.md section 2).

Layout::

    root/metadata.jsonl     one JSON object per line
    root/<file_name>        the images, anywhere under root

Each line: ``{"file_name": "a/x.jpg", "emotion": "awe"}`` plus, optionally, ``"scene": str``,
``"objects": [str, ...]`` and ``"split": "train" | "val" | "test"`` (any split name works). Emotions are
mapped by name (case-insensitive) onto ``labels``. A missing scene stays ``None`` and missing objects
``[]``, so they are masked out of the attribute losses rather than treated as negatives.

Split filtering: when ``split`` is given and at least one line has a ``"split"`` key, only lines whose
split equals it are kept, and lines *without* a split belong to no split (they are counted in a warning).
When no line has a ``"split"`` key the whole folder is used for any ``split`` (with a warning, because
training and evaluating on such a folder uses the same images).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from PIL import Image

from uniemo.constants import EMOTIONS
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


class ImageFolderDataset(EmotionDataset):
    """Images listed in ``root/metadata.jsonl`` with their emotion and optional attributes.

    Args:
        root: the folder holding ``metadata.jsonl``; ``file_name`` is relative to it.
        transform: PIL RGB image -> (3, H, W) tensor; ``None`` returns PIL images.
        on_error: ``"raise"`` or ``"skip"`` for unreadable images (see ``EmotionDataset``).
        labels: the label space, in class-index order; each line's ``emotion`` must be one of them.
        split: keep only this split (see the module docstring); ``None`` keeps every line.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        transform: Callable[[Image.Image], Any] | None = None,
        on_error: str = "raise",
        labels: Sequence[str] = EMOTIONS,
        split: str | None = None,
    ) -> None:
        self.root = require_dir(root, "image folder")
        self.split = split
        metadata_path = require_file(os.path.join(self.root, "metadata.jsonl"), "image folder metadata")
        rows = self._read_metadata(metadata_path, labels)
        if split is not None:
            rows = self._select_split(rows, split, metadata_path)
        entries = [entry for _, entry in rows]
        super().__init__(entries, labels, transform=transform, on_error=on_error)

    def _read_metadata(self, path: str, labels: Sequence[str]) -> list[tuple[str | None, ImageEntry]]:
        """``(split or None, entry)`` per non-blank line, in file order."""
        rows: list[tuple[str | None, ImageEntry]] = []
        with open(path, encoding="utf-8") as f:
            for line_number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                where = f"{path} line {line_number}"
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    raise ValueError(f"{where}: not valid JSON ({error})") from error
                if not isinstance(record, dict) or "file_name" not in record or "emotion" not in record:
                    raise ValueError(f"{where}: each line needs 'file_name' and 'emotion', got {line.strip()!r}")
                entry = ImageEntry(
                    path=os.path.join(self.root, record["file_name"]),
                    label=label_index(record["emotion"], labels, where),
                    scene=clean_scene(record.get("scene")),
                    objects=clean_objects(record.get("objects")),
                )
                split = record.get("split")
                rows.append((str(split) if split is not None else None, entry))
        return rows

    @staticmethod
    def _select_split(
        rows: list[tuple[str | None, ImageEntry]], split: str, path: str
    ) -> list[tuple[str | None, ImageEntry]]:
        present = sorted({row_split for row_split, _ in rows if row_split is not None})
        if not present:
            logger.warning("%s has no 'split' field; using every image for split %r", path, split)
            return rows
        unassigned = sum(row_split is None for row_split, _ in rows)
        if unassigned:
            logger.warning("%s: %d lines have no 'split' and belong to no split", path, unassigned)
        kept = [row for row in rows if row[0] == split]
        if not kept:
            raise ValueError(f"{path} has no lines with split {split!r}; splits present: {', '.join(present)}")
        return kept
