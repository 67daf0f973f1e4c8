"""FI (Flickr & Instagram, You et al. AAAI 2016) with a seeded, stratified, written-down split.

docs/method.md section 2

FI ships as one folder per emotion (``root/amusement/*.jpg``, ...) and no official split; the usual
protocol is a random 80/5/15 train/val/test split. Folder names are mapped onto ``EMOTIONS`` by name,
case-insensitively (copies in circulation sort them alphabetically, and the index must not follow
that order); unknown folders are ignored with a warning.

The split is drawn per class (stratified) from ``seed`` and written to a JSON file, by default
``root/uniemo_split_seed{seed}.json``::

    {"seed": 0, "fractions": [0.8, 0.05, 0.15],
     "train": [["amusement/x.jpg", "amusement"], ...], "val": [...], "test": [...]}

An existing file is read, never regenerated, so a run can be repeated exactly, and the file can be
shipped alongside results. FI has no attributes: every entry has ``scene=None`` and ``objects=[]``.
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections.abc import Callable, Sequence
from typing import Any

from PIL import Image

from uniemo.constants import EMOTIONS
from uniemo.data.base import EmotionDataset, ImageEntry, label_index, list_images, require_dir

logger = logging.getLogger(__name__)

FI_SPLITS: tuple[str, ...] = ("train", "val", "test")
DEFAULT_FRACTIONS: tuple[float, float, float] = (0.8, 0.05, 0.15)
# Some FI copies (and the IAE extension) name the sadness folder "sad".
FOLDER_ALIASES: dict[str, str] = {"sad": "sadness"}


def scan_emotion_folders(root: str) -> dict[str, list[str]]:
    """Emotion name -> sorted image paths relative to ``root``, from the per-emotion subfolders."""
    images: dict[str, list[str]] = {}
    for folder in sorted(os.listdir(root)):
        if not os.path.isdir(os.path.join(root, folder)):
            continue
        emotion = FOLDER_ALIASES.get(folder.lower(), folder.lower())
        if emotion not in EMOTIONS:
            logger.warning("ignoring folder %s: not one of %s", os.path.join(root, folder), ", ".join(EMOTIONS))
            continue
        found = [f"{folder}/{name}" for name in list_images(os.path.join(root, folder))]
        # Two folders differing only in case ("Awe", "awe") are merged into one class.
        images[emotion] = sorted(images.get(emotion, []) + found)
    if not any(images.values()):
        raise ValueError(
            f"no images found in emotion folders under {root}; expected folders named {', '.join(EMOTIONS)}"
        )
    return images


def stratified_split(
    images: dict[str, list[str]], seed: int, fractions: Sequence[float] = DEFAULT_FRACTIONS
) -> dict[str, list[list[str]]]:
    """Split each class separately into train/val/test with the given fractions.

    Args:
        images: emotion name -> image paths (relative to the dataset root).
        seed: the split's seed; each class draws from its own generator seeded by (seed, emotion), so adding
            images to one class does not reshuffle the others.
        fractions: (train, val, test), summing to 1.

    Returns:
        ``{"train": [[path, emotion], ...], "val": [...], "test": [...]}``, each list sorted.
    """
    _, val_fraction, test_fraction = _check_fractions(fractions)
    split: dict[str, list[list[str]]] = {name: [] for name in FI_SPLITS}
    for emotion in EMOTIONS:
        paths = sorted(images.get(emotion, []))
        random.Random(f"fi:{seed}:{emotion}").shuffle(paths)
        # Round half up per class; train takes the remainder so every image lands somewhere.
        n_test = int(len(paths) * test_fraction + 0.5)
        n_val = min(int(len(paths) * val_fraction + 0.5), len(paths) - n_test)
        split["test"] += [[path, emotion] for path in paths[:n_test]]
        split["val"] += [[path, emotion] for path in paths[n_test : n_test + n_val]]
        split["train"] += [[path, emotion] for path in paths[n_test + n_val :]]
    return {name: sorted(rows) for name, rows in split.items()}


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    values = tuple(float(f) for f in fractions)
    if len(values) != 3 or min(values) < 0 or abs(sum(values) - 1.0) > 1e-6:
        raise ValueError(
            f"fractions must be three non-negative numbers (train, val, test) summing to 1, got {fractions}"
        )
    return values[0], values[1], values[2]


def _format_split_file(seed: int, fractions: Sequence[float], split: dict[str, list[list[str]]]) -> str:
    """JSON with one ``[path, emotion]`` row per line, so split files diff and grep cleanly."""
    parts = [f'{{\n  "seed": {json.dumps(seed)},\n  "fractions": {json.dumps(list(fractions))}']
    for name in FI_SPLITS:
        rows = ",\n".join(f"    {json.dumps(row)}" for row in split[name])
        parts.append(f'  "{name}": [\n{rows}\n  ]' if rows else f'  "{name}": []')
    return ",\n".join(parts) + "\n}\n"


class FIDataset(EmotionDataset):
    """One split of FI, drawn per class from ``seed`` and kept in a split file.

    Args:
        root: folder with one subfolder per emotion.
        split: ``"train"``, ``"val"`` or ``"test"``.
        transform: PIL RGB image -> (3, H, W) tensor; ``None`` returns PIL images.
        on_error: ``"raise"`` or ``"skip"`` for unreadable images (see ``EmotionDataset``).
        seed: seed of the random split (used only when the split file does not exist yet).
        split_file: where the split is read from / written to; default ``root/uniemo_split_seed{seed}.json``.
            Pass a writable path when ``root`` is read-only.
        fractions: (train, val, test) fractions for a new split.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str,
        transform: Callable[[Image.Image], Any] | None = None,
        on_error: str = "raise",
        seed: int = 0,
        split_file: str | os.PathLike | None = None,
        fractions: Sequence[float] = DEFAULT_FRACTIONS,
    ) -> None:
        if split not in FI_SPLITS:
            raise ValueError(f"FI split must be one of {', '.join(FI_SPLITS)}, got {split!r}")
        self.root = require_dir(root, "FI")
        self.split = split
        self.seed = seed
        self.split_file = (
            os.fspath(split_file) if split_file is not None else self.default_split_file(self.root, seed)
        )
        if not os.path.isfile(self.split_file):
            self.write_split(self.root, seed, self.split_file, fractions)
        rows = self._read_split_file(self.split_file, seed, fractions)[split]
        where = f"{self.split_file} ({split})"
        entries = [
            ImageEntry(path=os.path.join(self.root, path), label=label_index(emotion, EMOTIONS, where))
            for path, emotion in rows
        ]
        super().__init__(entries, EMOTIONS, transform=transform, on_error=on_error)

    @staticmethod
    def default_split_file(root: str | os.PathLike, seed: int) -> str:
        """``root/uniemo_split_seed{seed}.json``."""
        return os.path.join(os.fspath(root), f"uniemo_split_seed{seed}.json")

    @staticmethod
    def write_split(
        root: str | os.PathLike,
        seed: int = 0,
        out_path: str | os.PathLike | None = None,
        fractions: Sequence[float] = DEFAULT_FRACTIONS,
    ) -> str:
        """Draw the stratified split of the FI folder ``root`` and write it to ``out_path``.

        Args:
            root: folder with one subfolder per emotion.
            seed: the split's seed.
            out_path: the split file; default ``root/uniemo_split_seed{seed}.json``.
            fractions: (train, val, test).

        Returns:
            The path written.
        """
        root = require_dir(root, "FI")
        out_path = os.fspath(out_path) if out_path is not None else FIDataset.default_split_file(root, seed)
        split = stratified_split(scan_emotion_folders(root), seed, fractions)
        text = _format_split_file(seed, _check_fractions(fractions), split)
        # Write then rename, so a concurrent reader (another rank) never sees a half-written file.
        tmp_path = f"{out_path}.{os.getpid()}.tmp"
        try:
            os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
            with open(tmp_path, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp_path, out_path)
        except OSError as error:
            raise OSError(
                f"cannot write the FI split file {out_path} ({error}); if the dataset folder is read-only, "
                f"pass split_file= a writable path (e.g. FIDataset(root, split, split_file='runs/fi_split.json'))"
            ) from error
        logger.info("wrote FI split (seed %d) to %s", seed, out_path)
        return out_path

    @staticmethod
    def _read_split_file(path: str, seed: int, fractions: Sequence[float]) -> dict[str, list[list[str]]]:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if not isinstance(data, dict) or any(name not in data for name in FI_SPLITS):
            raise ValueError(f"FI split file {path} must be a JSON object with the keys {', '.join(FI_SPLITS)}")
        # The file wins: it is the record of the split; a differing request is only reported.
        if data.get("seed") != seed or list(data.get("fractions", [])) != list(fractions):
            logger.warning(
                "FI split file %s was made with seed=%s fractions=%s; using it as is "
                "(requested seed=%s fractions=%s)",
                path,
                data.get("seed"),
                data.get("fractions"),
                seed,
                list(fractions),
            )
        return data
