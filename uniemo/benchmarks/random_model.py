"""A UniEmo with random weights around any Stable Diffusion: no training is needed to measure time and memory."""

from __future__ import annotations

import torch

from uniemo.attributes import AttributeTargets
from uniemo.classifier import EmoClassifier, EmoClassifierConfig
from uniemo.correlation import CorrelationTable
from uniemo.diffusion import add_placeholder_token
from uniemo.emotion_space import KINDS, EmotionSpace
from uniemo.fusion import EmoFusion, EmoFusionConfig
from uniemo.pipeline import UniEmoPipeline


def random_attribute_base(proj_dim: int, emotions: tuple[str, ...], seed: int = 0
                          ) -> tuple[AttributeTargets, CorrelationTable]:
    """A small attribute base and α table with random unit text embeddings."""
    g = torch.Generator().manual_seed(seed)
    scenes = ["sky", "sea", "forest", "room", "city", "meadow"]
    objects = ["balloon", "skull", "cake", "spider", "flower", "knife", "lamp", "tree"]
    unit = lambda n: torch.nn.functional.normalize(torch.randn(n, proj_dim, generator=g), dim=-1)  # noqa: E731
    scene_embeds, object_embeds = unit(len(scenes)), unit(len(objects))
    attributes = AttributeTargets(scenes, objects, scene_embeds, object_embeds)
    alpha = lambda n: torch.randn(n, len(emotions), generator=g).softmax(-1)  # noqa: E731
    correlation = CorrelationTable(scenes, objects, scene_embeds, object_embeds, alpha(len(scenes)),
                                   alpha(len(objects)), [1] * len(scenes), [1] * len(objects), emotions)
    return attributes, correlation


def build_random_pipeline(classifier_config: EmoClassifierConfig, sd_pipe, fusion_hidden: int, resolution: int,
                          seed: int = 0) -> UniEmoPipeline:
    """A ``UniEmoPipeline`` around ``sd_pipe`` with random classifier, fusion, emotion space, attributes and α."""
    emotions = classifier_config.emotions
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        classifier = EmoClassifier(classifier_config)
        placeholder_id = add_placeholder_token(sd_pipe.tokenizer, sd_pipe.text_encoder)
        text_width = sd_pipe.text_encoder.get_input_embeddings().embedding_dim
        fusion = EmoFusion(EmoFusionConfig(vision_width=classifier_config.width, hidden_size=fusion_hidden,
                                           text_width=text_width, num_classes=len(emotions), emotions=emotions))
        labels = torch.arange(len(emotions)).repeat(4)
        space = EmotionSpace.fit({k: torch.randn(len(labels), classifier_config.width) for k in KINDS}, labels,
                                 emotions)
    attributes, correlation = random_attribute_base(classifier_config.proj_dim, emotions, seed)
    return UniEmoPipeline(classifier, fusion, space, attributes, sd_pipe, placeholder_id, correlation,
                          resolution=resolution, info={"name": "random-weights benchmark model"}).to("cpu")
