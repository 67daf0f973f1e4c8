"""Emotion fusion: map the classifier's three embeddings into the text encoder's token space (docs/method.md section 5).

Implements paper Sec. III-B, Eq. 6 (the weighted fusion into one condition) and the head of Eq. 7 (the
emotional condition loss; the loss itself lives in ``losses.py``). The result ``condition`` enters Stable
Diffusion through ``uniemo.diffusion.encode_condition``, in place of the ``<emotion>`` token.

Paper -> code:
    φ1 (scene mapper)          -> ``EmoFusion.scene_mapper``
    φ2 (object mapper)         -> ``EmoFusion.object_mapper``
    φ3 (emotion / CLS mapper)  -> ``EmoFusion.cls_mapper``
    α_Scene, α_Object (Eq. 5)  -> ``alpha_scene``, ``alpha_object`` (the emotional correlation coefficients,
                                  looked up elsewhere; constants here, they carry no gradient)
    c (Eq. 6)                  -> ``condition`` (B, text_width)
    e^p = softmax(head(c)) (Eq. 7) -> ``condition_logits`` (softmax taken by the loss)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from uniemo.checkpoint import PretrainedMixin
from uniemo.constants import EMOTIONS


@dataclass
class EmoFusionConfig:
    """Sizes of the fusion module; the config alone determines the architecture."""

    vision_width: int  # width D of cls_embed / scene_embed / object_embed (768 for ViT-B, 1024 for ViT-L)
    hidden_size: int = 1024  # hidden width of each mapper
    text_width: int = 768  # diffusion text encoder's embedding size C (768 for SD 1.5)
    num_classes: int = 8
    emotions: tuple[str, ...] = EMOTIONS

    def __post_init__(self) -> None:
        # JSON gives lists; keep the label list a tuple so configs compare equal after a round trip.
        self.emotions = tuple(self.emotions)
        self.validate()

    def validate(self) -> None:
        """Raise ValueError, saying what to change, if the config cannot build a model."""
        for name in ("vision_width", "hidden_size", "text_width", "num_classes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"EmoFusionConfig.{name} must be a positive integer, got {value!r}")
        if len(self.emotions) != self.num_classes:
            raise ValueError(
                f"EmoFusionConfig.emotions has {len(self.emotions)} names but "
                f"num_classes={self.num_classes}; give one name per class"
            )

    @classmethod
    def tiny(cls) -> EmoFusionConfig:
        """Width-32 mappers for tests and CPU runs, matching the tiny classifier and tiny SD (width 32)."""
        return cls(vision_width=32, hidden_size=64, text_width=32)


def _mapper(in_width: int, hidden: int, out_width: int) -> nn.Sequential:
    """φ: Linear(in, hidden) -> ReLU -> Linear(hidden, out) (docs/method.md section 5)."""
    return nn.Sequential(nn.Linear(in_width, hidden), nn.ReLU(), nn.Linear(hidden, out_width))


class EmoFusion(nn.Module, PretrainedMixin):
    """Maps (cls, scene, object) embeddings to one emotion condition c and classifies c.

    Args:
        config: an ``EmoFusionConfig``; validated here, so invalid sizes fail at construction.
    """

    config_class = EmoFusionConfig

    def __init__(self, config: EmoFusionConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.scene_mapper = _mapper(config.vision_width, config.hidden_size, config.text_width)  # φ1
        self.object_mapper = _mapper(config.vision_width, config.hidden_size, config.text_width)  # φ2
        self.cls_mapper = _mapper(config.vision_width, config.hidden_size, config.text_width)  # φ3
        # Eq. 7's extra head on c; its softmax is e^p in the emotional condition loss.
        self.condition_head = nn.Linear(config.text_width, config.num_classes)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        # Truncated normal (std 0.02) weights and zero biases for every Linear: the ViT / BERT scheme that
        # timm's VisionTransformer uses for its Linear layers. The official code keeps PyTorch's default
        # (Kaiming-uniform) init; one explicit scheme here makes the starting scale of c documented and small.
        # torch's bounds a, b are absolute values (default ±2, i.e. no truncation at std 0.02): cut at 2 std.
        if isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, std=0.02, a=-0.04, b=0.04)
            nn.init.zeros_(module.bias)

    @property
    def emotions(self) -> tuple[str, ...]:
        return self.config.emotions

    def _coefficient(self, alpha: Tensor | float, like: Tensor, name: str) -> Tensor:
        """α as a detached (B, 1) or scalar tensor on ``like``'s device and dtype."""
        alpha = torch.as_tensor(alpha, device=like.device, dtype=like.dtype).detach()
        if alpha.ndim == 0:
            return alpha
        if alpha.shape != (like.shape[0],):
            raise ValueError(
                f"{name} must be a float or a ({like.shape[0]},) tensor, got shape {tuple(alpha.shape)}"
            )
        return alpha[:, None]  # (B, 1), broadcasts over the text width

    def forward(
        self,
        cls_embed: Tensor,
        scene_embed: Tensor,
        object_embed: Tensor,
        alpha_scene: Tensor | float,
        alpha_object: Tensor | float,
    ) -> Tensor:
        """Eq. 6: c = α_Scene·φ1(scene_embed) + α_Object·φ2(object_embed) + φ3(cls_embed).

        Args:
            cls_embed: (B, D) the classifier's CLS embedding.
            scene_embed: (B, D) pooled scene-query embedding.
            object_embed: (B, D) pooled object-query embedding.
            alpha_scene: (B,) tensor or float, α_Scene for each sample's (target) emotion.
            alpha_object: (B,) tensor or float, α_Object likewise.

        Returns:
            condition: (B, C), C = ``config.text_width``; the α are detached, so only the mappers (and the
            embeddings) receive gradient.
        """
        a_scene = self._coefficient(alpha_scene, scene_embed, "alpha_scene")
        a_object = self._coefficient(alpha_object, object_embed, "alpha_object")
        scene_term = a_scene * self.scene_mapper(scene_embed)  # (B, C)
        object_term = a_object * self.object_mapper(object_embed)  # (B, C)
        return scene_term + object_term + self.cls_mapper(cls_embed)  # (B, C)

    def condition_logits(self, condition: Tensor) -> Tensor:
        """Eq. 7's classification of the condition.

        Args:
            condition: (B, C) from ``forward``.

        Returns:
            (B, num_classes) logits; softmax gives e^p.
        """
        return self.condition_head(condition)


@torch.no_grad()
def correlation_alphas(classifier, correlation, features, emotion_idx: Tensor | int) -> tuple[Tensor, Tensor]:
    """α_Scene, α_Object (B,) for Eq. 6: the α table's entries at ``emotion_idx`` for the scene and object
    attributes nearest to each sample's pooled queries (projected into CLIP text space by the classifier).

    The one lookup used by stage-2 training (ground-truth emotion) and by the pipeline (target emotion).

    Args:
        classifier: an ``EmoClassifier`` (its ``project_queries``).
        correlation: a ``CorrelationTable``, or ``None``: α = 1 for every sample (the ablation without α).
        features: an ``EmoFeatures`` (``cls_embed``, ``scene_embed``, ``object_embed``, each (B, D)).
        emotion_idx: (B,) emotion indices, or one int for the whole batch.

    Returns:
        (alpha_scene, alpha_object), float32 on the features' device, carrying no gradient.
    """
    device = features.cls_embed.device
    if correlation is None:
        ones = torch.ones(features.cls_embed.shape[0], device=device)
        return ones, ones
    scene_points, object_points = classifier.project_queries(features)
    scene_idx, object_idx, _, _ = correlation.match(scene_points.float(), object_points.float())
    alpha_scene, alpha_object = correlation.lookup(scene_idx, object_idx, emotion_idx)
    return alpha_scene.to(device), alpha_object.to(device)


def fuse_features(classifier, fusion: EmoFusion, correlation, features, emotion_idx: Tensor | int) -> Tensor:
    """The condition c (B, C) of Eq. 6 from the classifier's features, α looked up at ``emotion_idx``
    (``correlation_alphas``). Gradient flows into the mappers and the embeddings, never through α."""
    alpha_scene, alpha_object = correlation_alphas(classifier, correlation, features, emotion_idx)
    return fusion(features.cls_embed, features.scene_embed, features.object_embed, alpha_scene, alpha_object)
