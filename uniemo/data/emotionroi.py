"""EmotionROI (Peng et al. ICIP 2016): 6 Ekman classes with the official train/test lists (docs/method.md section 2).

Layout::

    root/images/<class>/<id>.jpg
    root/training_testing_split/training.txt    one "<class>/<file>" per line
    root/training_testing_split/testing.txt

Lines may also carry a leading ``images/``. The class is the first path component, mapped by name onto
``EMOTIONROI_EMOTIONS`` (anger, disgust, fear, joy, sadness, surprise). There is no validation list, and no
attributes (``scene=None``, ``objects=[]``); the ``ground_truth/`` stimuli maps are not read.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from PIL import Image

from uniemo.constants import EMOTIONROI_EMOTIONS
from uniemo.data.base import EmotionDataset, ImageEntry, label_index, require_dir, require_file

# Split name -> list file under training_testing_split/.
EMOTIONROI_SPLIT_FILES: dict[str, str] = {"train": "training.txt", "test": "testing.txt"}


class EmotionROIDataset(EmotionDataset):
    """One official split of EmotionROI.

    Args:
        root: the dataset folder holding ``images/`` and ``training_testing_split/``.
        split: ``"train"`` (training.txt) or ``"test"`` (testing.txt).
        transform: PIL RGB image -> (3, H, W) tensor; ``None`` returns PIL images.
        on_error: ``"raise"`` or ``"skip"`` for unreadable images (see ``EmotionDataset``).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str,
        transform: Callable[[Image.Image], Any] | None = None,
        on_error: str = "raise",
    ) -> None:
        if split not in EMOTIONROI_SPLIT_FILES:
            raise ValueError(f"EmotionROI split must be one of {', '.join(EMOTIONROI_SPLIT_FILES)}, got {split!r}")
        self.root = require_dir(root, "EmotionROI")
        self.split = split
        list_path = require_file(
            os.path.join(self.root, "training_testing_split", EMOTIONROI_SPLIT_FILES[split]),
            "EmotionROI split list",
        )
        entries = []
        with open(list_path, encoding="utf-8") as f:
            for line_number, line in enumerate(f, start=1):
                # Lists written on Windows may use backslashes; strip() also drops the "\r".
                relative = line.strip().replace("\\", "/")
                if not relative:
                    continue
                relative = relative.removeprefix("images/")
                if "/" not in relative:
                    raise ValueError(
                        f"{list_path} line {line_number}: expected '<class>/<file>', got {line.strip()!r}"
                    )
                emotion = relative.split("/", 1)[0]
                label = label_index(emotion, EMOTIONROI_EMOTIONS, f"{list_path} line {line_number}")
                entries.append(ImageEntry(path=os.path.join(self.root, "images", relative), label=label))
        super().__init__(entries, EMOTIONROI_EMOTIONS, transform=transform, on_error=on_error)
