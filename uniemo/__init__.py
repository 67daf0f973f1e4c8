"""UniEmo: unified visual emotion understanding and generation with learnable expert queries.

Public API:

    from uniemo import UniEmoPipeline, EMOTIONS
    pipe = UniEmoPipeline.from_pretrained("assets/uniemo-tiny")

The names below are imported on first use (as diffusers and transformers do), so that ``import uniemo`` and
the light modules (``uniemo.config``, ``uniemo.constants``) do not pull in torch: every script's ``--help``
answers at once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from uniemo.constants import EMOTIONS

_LAZY = {
    "EmoClassifier": "uniemo.classifier",
    "EmoClassifierConfig": "uniemo.classifier",
    "EmoClassifierOutput": "uniemo.classifier",
    "EmoFeatures": "uniemo.classifier",
    "EmoFusion": "uniemo.fusion",
    "EmoFusionConfig": "uniemo.fusion",
    "EmotionPrediction": "uniemo.pipeline",
    "EmotionSpace": "uniemo.emotion_space",
    "UniEmoPipeline": "uniemo.pipeline",
}

__all__ = ["EMOTIONS", *_LAZY]

if TYPE_CHECKING:
    from uniemo.classifier import EmoClassifier, EmoClassifierConfig, EmoClassifierOutput, EmoFeatures
    from uniemo.emotion_space import EmotionSpace
    from uniemo.fusion import EmoFusion, EmoFusionConfig
    from uniemo.pipeline import EmotionPrediction, UniEmoPipeline


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'uniemo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
