"""``EmoClassifierConfig``: the classifier's architecture as data, and the named backbone geometries.

The config alone determines ``uniemo.classifier.EmoClassifier`` (it is saved as the ``config.json`` of a
classifier folder). ``from_preset`` picks a backbone geometry (``BACKBONE_PRESETS``: the tiny test model,
CLIP ViT-B/32, ViT-B/16, ViT-L/14) and one of the two readings of the method (``VARIANTS``): the paper's, or the
released code's (``variant="official"``). No torch import here: a script can read the presets before it parses
its arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from uniemo.constants import CLIP_MEAN, CLIP_STD, EMOTIONS

# Geometry of the supported backbones: (image_size, patch_size, width, layers, heads, proj_dim).
# proj_dim is the CLIP joint embedding size, i.e. the text space that W_S / W_O project into.
BACKBONE_PRESETS: dict[str, dict] = {
    "tiny": dict(image_size=32, patch_size=8, width=32, layers=6, heads=2, proj_dim=32,
                 num_scene_queries=4, num_object_queries=4, head_hidden=64),
    "vit-b-32": dict(image_size=224, patch_size=32, width=768, layers=12, heads=12, proj_dim=512),
    "vit-b-16": dict(image_size=224, patch_size=16, width=768, layers=12, heads=12, proj_dim=512),
    "vit-l-14": dict(image_size=224, patch_size=14, width=1024, layers=24, heads=16, proj_dim=768),
}
VARIANTS = ("paper", "official")


@dataclass
class EmoClassifierConfig:
    # backbone geometry (defaults: CLIP ViT-B/32 @ 224)
    image_size: int = 224  # input resolution; patches = (image_size / patch_size)^2
    patch_size: int = 32
    width: int = 768  # D, token width
    layers: int = 12  # N transformer blocks
    heads: int = 12
    mlp_ratio: float = 4.0
    layer_norm_eps: float = 1e-5
    image_mean: tuple[float, ...] = CLIP_MEAN  # preprocessing ships with the model
    image_std: tuple[float, ...] = CLIP_STD
    # expert queries
    use_queries: bool = True  # False: a plain CLIP vision tower (parity tests, ablation "no queries")
    num_scene_queries: int = 32  # K; the official code uses 32
    num_object_queries: int = 32
    split_layers: tuple[int, int] | None = None  # (L1, L2), 0 < L1 < L2 < layers; None = (N//3, 2N//3)
    query_init_std: float = 1.0  # official: nn.Embedding default N(0, 1)
    interactive_layers: int = 2  # paper: 2, official: 1
    interactive_kv: Literal["patch", "cls_patch"] = "patch"  # paper: patch tokens; official: CLS + patches
    use_beta: bool = True  # Eq. 3; official: False (the block output replaces the queries)
    beta_init: float = 1e-4
    # contrastive projections into the CLIP text space (Eq. 4)
    proj_dim: int = 512
    learnable_proj: bool = True  # official: frozen N(0, 1) random projections
    # emotion head
    head_hidden: int = 768
    head_dropout: float = 0.5
    emotions: tuple[str, ...] = EMOTIONS  # label list; order = class index
    preset: str = "vit-b-32"  # informational: which geometry this came from
    variant: str = "paper"  # informational: "paper" or "official"

    def __post_init__(self) -> None:
        self.validate()

    @property
    def num_classes(self) -> int:
        return len(self.emotions)

    @property
    def grid_size(self) -> int:
        return self.image_size // self.patch_size

    @property
    def resolved_split_layers(self) -> tuple[int, int]:
        if self.split_layers is not None:
            return tuple(self.split_layers)
        return (self.layers // 3, 2 * self.layers // 3)

    def validate(self) -> None:
        if self.image_size % self.patch_size:
            raise ValueError(
                f"image_size ({self.image_size}) must be a multiple of patch_size ({self.patch_size})"
            )
        if self.width % self.heads:
            raise ValueError(f"width ({self.width}) must be divisible by heads ({self.heads})")
        if self.layers < 3:
            raise ValueError(f"layers must be at least 3 (three stages of the chain), got {self.layers}")
        l1, l2 = self.resolved_split_layers
        if not 0 < l1 < l2 < self.layers:
            raise ValueError(
                f"split_layers must satisfy 0 < L1 < L2 < layers ({self.layers}), got ({l1}, {l2}); "
                f"e.g. split_layers=[{self.layers // 3}, {2 * self.layers // 3}]"
            )
        if self.use_queries and (self.num_scene_queries < 1 or self.num_object_queries < 1):
            raise ValueError("num_scene_queries and num_object_queries must be >= 1 (or set use_queries=false)")
        if self.interactive_layers < 1:
            raise ValueError(f"interactive_layers must be >= 1, got {self.interactive_layers}")
        if self.interactive_kv not in ("patch", "cls_patch"):
            raise ValueError(f"interactive_kv must be 'patch' or 'cls_patch', got {self.interactive_kv!r}")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if len(self.emotions) < 2 or len(set(self.emotions)) != len(self.emotions):
            raise ValueError(f"emotions must be >= 2 distinct names, got {self.emotions}")
        if not 0.0 <= self.head_dropout < 1.0:
            raise ValueError(f"head_dropout must be in [0, 1), got {self.head_dropout}")

    @classmethod
    def from_preset(cls, name: str, variant: str = "paper", **overrides) -> EmoClassifierConfig:
        """A named backbone geometry (``tiny``, ``vit-b-32``, ``vit-b-16``, ``vit-l-14``) and method reading.

        Args:
            name: backbone preset.
            variant: ``"paper"`` (2 interactive layers over patch tokens, β, learnable projections) or
                ``"official"`` (the released code: 1 layer, CLS in keys/values, no β, frozen projections).
            overrides: any other field.
        """
        if name not in BACKBONE_PRESETS:
            raise ValueError(f"unknown classifier preset {name!r}; choose one of {', '.join(BACKBONE_PRESETS)}")
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
        kwargs = dict(BACKBONE_PRESETS[name], preset=name, variant=variant)
        if variant == "official":
            kwargs.update(interactive_layers=1, interactive_kv="cls_patch", use_beta=False, learnable_proj=False)
        kwargs.update(overrides)
        return cls(**kwargs)

    @classmethod
    def tiny(cls, **overrides) -> EmoClassifierConfig:
        """6-layer, width-32, 32-px model for tests and CPU smoke runs."""
        return cls.from_preset("tiny", **overrides)
