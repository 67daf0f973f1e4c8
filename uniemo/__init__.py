"""UniEmo: unified visual emotion understanding and generation with learnable expert queries.

Public API (INTERFACES.md):

    from uniemo import UniEmoPipeline, EMOTIONS
    pipe = UniEmoPipeline.from_pretrained("assets/uniemo-tiny")
"""

from uniemo.classifier import EmoClassifier, EmoClassifierConfig, EmoClassifierOutput, EmoFeatures
from uniemo.constants import EMOTIONS
from uniemo.emotion_space import EmotionSpace
from uniemo.fusion import EmoFusion, EmoFusionConfig
from uniemo.pipeline import EmotionPrediction, UniEmoPipeline

__all__ = [
    "EMOTIONS",
    "EmoClassifier",
    "EmoClassifierConfig",
    "EmoClassifierOutput",
    "EmoFeatures",
    "EmoFusion",
    "EmoFusionConfig",
    "EmotionPrediction",
    "EmotionSpace",
    "UniEmoPipeline",
]
