"""The stage-2 options that ``uniemo.training.stage2`` reads: what is trained, the loss weights, the optimiser.

``set_trainable`` reads ``JointModelConfig``'s ``train_*`` switches, ``joint_step`` the ``JointLossConfig``
weights and ``build_optimizer`` the ``JointOptimConfig`` learning rates; their defaults are the default stage-2
run. train/joint.py nests them in its ``Config`` (``model``, ``loss``, ``optim``); the training benchmark
(``uniemo.benchmarks.training``) builds its step from the same defaults. No torch import here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class JointModelConfig:
    stage1: str = ""  # stage-1 model folder (classifier/ + attributes.*), e.g. runs/emoset-vit-b-32/final
    diffusion: str = "stable-diffusion-v1-5/stable-diffusion-v1-5"  # Hub id or local diffusers folder
    correlation: str | None = None  # folder with correlation.safetensors (train/probe.py); null: α = 1
    fusion_hidden: int = 1024  # mapper hidden width (official: 1024)
    placeholder_initializer: str | None = None  # token whose embedding initialises <emotion> (unused in practice)
    train_queries: bool = True  # queries + Interactive Blocks (the "implicit feedback" path)
    train_projections: bool = True  # W_S, W_O
    train_backbone: bool = False  # CLIP ViT blocks (the paper's "entire model" setting)
    train_head: bool = False  # the stage-1 emotion head
    train_unet: bool = False
    gradient_checkpointing: bool = False  # recompute the UNet's and the ViT's activations in backward (less memory)
    copy_diffusion: bool | None = None  # write diffusion/ into the model folder; null: for local bases, and always
    # when the UNet is trained (a trained UNet is never dropped)
    init_fusion: str | None = None  # start the mappers from a fusion/ folder (or a model folder) instead of afresh


@dataclass
class JointLossConfig:
    understanding: float = 0.3  # γ1 (official 0.5)
    condition: float = 0.3  # γ2 (official: see condition_variant)
    diffusion: float = 0.4  # γ3 (official 1.0)
    scene: float = 0.25  # λ1 inside L_U
    object: float = 0.25  # λ2
    emotion: float = 0.5  # λ3
    temperature: float = 0.07
    symmetric: bool = False
    released_masking: bool = False  # official: missing attributes' dummy texts and duplicates stay negatives
    condition_margin: float = 0.1  # ξ (official 0.5)
    # paper: hinge on the condition head's softmax (Eq. 7). official: the released code's
    # 1e-3·CE(z, e+) + 1e-6·max(0, ξ + cos(z, e-) - cos(z, e+)), z = the frozen stage-1 head's last layer on c
    condition_variant: str = "paper"


@dataclass
class JointOptimConfig:
    lr_queries: float = 5e-4
    lr_mappers: float = 1e-3  # mappers + condition head
    lr_projections: float = 1e-4
    lr_backbone: float = 8e-6
    lr_head: float = 1e-4
    lr_unet: float = 1e-5
    weight_decay: float = 1e-2
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_ratio: float = 0.02
    grad_clip: float = 1.0
