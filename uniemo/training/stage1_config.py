"""The options of a stage-1 run (``uniemo.training.stage1.run_stage1``, the command line ``train/understanding.py``).

Defaults are the paper's stage 1 on EmoSet with ViT-B/32; the recipe's presets (``train/configs``) override them.
No torch import here, so that a command line's ``--help`` and a bad config answer at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from uniemo.training.data_config import DataConfig


@dataclass
class UnderstandingModelConfig:
    preset: str = "vit-b-32"  # tiny | vit-b-32 | vit-b-16 | vit-l-14 (geometry when clip is null)
    variant: str = "paper"  # paper | official
    clip: str | None = "openai/clip-vit-base-patch32"  # Hub id or local folder; null = random tiny CLIP
    init_classifier: str | None = None  # continue from a saved classifier folder instead of CLIP
    overrides: dict[str, Any] = field(default_factory=dict)  # EmoClassifierConfig fields, e.g. {num_scene_queries: 8}
    freeze_backbone: bool = False


@dataclass
class UnderstandingLossConfig:
    scene: float = 0.25  # λ1 (official 0.05)
    object: float = 0.25  # λ2 (official 0.05)
    emotion: float = 0.5  # λ3 (official 0.9)
    temperature: float = 0.07  # τ of Eq. 4
    symmetric: bool = False  # official: symmetric CLIP loss
    released_masking: bool = False  # official: missing attributes' dummy texts and duplicates stay negatives


@dataclass
class UnderstandingOptimConfig:
    lr_backbone: float = 8e-6
    lr_queries: float = 5e-4  # queries and Interactive Blocks
    lr_projections: float = 1e-4  # W_S, W_O
    lr_head: float = 1e-4
    weight_decay: float = 1e-3  # not applied to biases, norms and other 1-D parameters
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_ratio: float = 0.05  # fraction of all optimizer steps spent warming up
    min_lr_ratio: float = 0.0
    grad_clip: float = 1.0  # 0 disables clipping


@dataclass
class UnderstandingConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: UnderstandingModelConfig = field(default_factory=UnderstandingModelConfig)
    loss: UnderstandingLossConfig = field(default_factory=UnderstandingLossConfig)
    optim: UnderstandingOptimConfig = field(default_factory=UnderstandingOptimConfig)
    out_dir: str = "runs/understanding"
    seed: int = 0
    batch_size: int = 128  # global batch (split across processes)
    grad_accum_steps: int = 1
    epochs: int = 15
    max_steps: int | None = None  # overrides epochs when set (optimizer steps)
    eval_every: int | None = None  # steps; null = once per epoch
    checkpoint_every: int | None = None  # steps; null = once per epoch
    checkpoints_total_limit: int = 2
    log_every: int = 10
    mixed_precision: str | None = None  # no | fp16 | bf16; null: the launcher's (accelerate launch --mixed_precision)
    resume: str | None = None  # a checkpoint folder, or "latest"
    eval_batch_size: int = 64
    # accelerate trackers: tensorboard (event files in out_dir/logs/), any other accelerate tracker name, several
    # separated by commas, "all", or "none"
    report_to: str | None = "tensorboard"
    # seconds a process waits at a collective (all-reduce, barrier, gather) before the run fails; long enough for
    # the slowest work one process does alone (saving a checkpoint, a memory-bank update's share)
    collective_timeout: int = 1800

    def validate(self) -> None:
        if not self.data.val_split:
            raise ValueError("data.val_split is required: stage 1 selects its model on it (EmotionROI / Twitter: test)")
        if self.batch_size < 1 or self.grad_accum_steps < 1:
            raise ValueError("batch_size and grad_accum_steps must be >= 1")
        if self.mixed_precision not in (None, "no", "fp16", "bf16"):
            raise ValueError(f"mixed_precision must be no, fp16, bf16 or null (the launcher's), "
                             f"got {self.mixed_precision!r}")
        if self.model.variant not in ("paper", "official"):
            raise ValueError(f"model.variant must be paper or official, got {self.model.variant!r}")
