"""Label spaces and fixed constants (docs/method.md section 1). No torch import here.

The order of ``EMOTIONS`` is the class index everywhere: model heads, checkpoints, tables, files.
Indices 0-3 are positive, 4-7 negative (used by the 2-class collapse).
"""

EMOTIONS: tuple[str, ...] = (
    "amusement", "awe", "contentment", "excitement", "anger", "disgust", "fear", "sadness",
)
POSITIVE_EMOTIONS: tuple[str, ...] = EMOTIONS[:4]
NEGATIVE_EMOTIONS: tuple[str, ...] = EMOTIONS[4:]

EMOTIONROI_EMOTIONS: tuple[str, ...] = ("anger", "disgust", "fear", "joy", "sadness", "surprise")
# Binary sentiment: index 0 negative, 1 positive (Twitter I/II ground-truth files use 1 = positive).
SENTIMENTS: tuple[str, ...] = ("negative", "positive")

# Label spaces by dataset name; a model's own list is stored in its config.
LABEL_SPACES: dict[str, tuple[str, ...]] = {
    "emoset": EMOTIONS,
    "emoshapes": EMOTIONS,
    "fi": EMOTIONS,
    "emotionroi": EMOTIONROI_EMOTIONS,
    "twitter1": SENTIMENTS,
    "twitter2": SENTIMENTS,
}

# OpenAI CLIP preprocessing statistics (open_clip.constants.OPENAI_DATASET_MEAN/STD).
CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)

# The placeholder token through which the fused condition enters the diffusion text encoder.
PLACEHOLDER_TOKEN = "<emotion>"
# The paper's neutral nouns for emotion transfer (any noun is allowed).
NEUTRAL_NOUNS: tuple[str, ...] = ("bench", "book", "cup", "lamp", "room", "sofa", "street")


def emotion_to_sentiment(emotion: str) -> str:
    """Collapse an 8-way EmoSet emotion to the binary sentiment ("negative" / "positive")."""
    if emotion not in EMOTIONS:
        raise ValueError(f"unknown emotion {emotion!r}; expected one of {', '.join(EMOTIONS)}")
    return "positive" if emotion in POSITIVE_EMOTIONS else "negative"
