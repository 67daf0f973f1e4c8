"""The options of EmoSym's steps 1 (reasoning-knowledge compression) and 2 (verifiable reward), the command lines
``train/emosym_compress.py`` and ``train/emosym_reward.py``. No torch import here.

Defaults are EmoSym's on EmoSet with Qwen2-VL-2B-Instruct (LoRA r 64 / alpha 128 / dropout 0.05, lr 1e-4, 3
epochs, loss 0.5 CE + 0.5 InfoNCE at tau 0.07, bf16); the tiny world's preset overrides them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from uniemo.training.data_config import DataConfig


@dataclass
class EmoSymModelConfig:
    mllm: str = "Qwen/Qwen2-VL-2B-Instruct"  # Hub id or local folder of a Qwen2-VL (model and processor)
    # the frozen text encoder of the rationales (a CLIP; its projected text features are the InfoNCE targets)
    text_encoder: str = "openai/clip-vit-large-patch14"
    init: str | None = None  # an EmoSym model folder to continue from (step 2 starts from step 1's)
    lora_r: int = 64
    lora_alpha: int = 128
    lora_dropout: float = 0.05
    dtype: str = "bf16"  # the MLLM's weights: bf16 | fp32 (the heads and LoRA train in fp32 either way)
    # the most pixels an image keeps after the processor's resizing (448 x 448: about 256 image tokens); null
    # keeps the processor's own limit (Qwen2-VL's: 1 003 520 px, up to 1280 tokens)
    max_pixels: int | None = 200704


@dataclass
class RationaleConfig:
    source: str = "attributes"  # emoshapes (the rule's sentences) | file (JSONL, templates as fallback) | attributes
    file: str | None = None  # the JSONL file of source=file: {"image": ..., "rationale": ...} per line


@dataclass
class EmoSymRunConfig:
    """The keys every EmoSym step's run shares (data, model, optimiser, schedule, logging) and their checks; each
    step's config adds its own and its defaults."""
    data: DataConfig = field(default_factory=lambda: DataConfig(num_workers=2))
    model: EmoSymModelConfig = field(default_factory=EmoSymModelConfig)
    lr: float = 1e-4
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    grad_clip: float = 1.0
    out_dir: str = "runs/emosym"
    seed: int = 0
    batch_size: int = 8  # global batch (split across processes)
    grad_accum_steps: int = 1
    epochs: int = 1
    max_steps: int | None = None  # overrides epochs when set (optimizer steps)
    eval_every: int | None = None  # steps; null = once per epoch
    eval_batch_size: int = 16
    log_every: int = 10
    mixed_precision: str | None = None  # no | fp16 | bf16; null: the launcher's
    report_to: str | None = "tensorboard"
    collective_timeout: int = 1800

    def validate(self) -> None:
        if not self.data.val_split:
            raise ValueError("data.val_split is required: the step selects its model on it")
        if self.batch_size < 1 or self.grad_accum_steps < 1:
            raise ValueError("batch_size and grad_accum_steps must be >= 1")
        if self.model.dtype not in ("bf16", "fp32"):
            raise ValueError(f"model.dtype must be bf16 or fp32, got {self.model.dtype!r}")
        if self.mixed_precision not in (None, "no", "fp16", "bf16"):
            raise ValueError(f"mixed_precision must be no, fp16, bf16 or null, got {self.mixed_precision!r}")


@dataclass
class EmoSymCompressConfig(EmoSymRunConfig):
    """Step 1: LoRA, the two token rows and the heads learn CE on [EMO] and InfoNCE from [CTX] to the
    rationales."""
    rationales: RationaleConfig = field(default_factory=RationaleConfig)
    ce_weight: float = 0.5
    nce_weight: float = 0.5
    temperature: float = 0.07
    lr: float = 1e-4  # LoRA, the two token rows and the heads
    out_dir: str = "runs/emosym-compress"
    epochs: int = 3

    def validate(self) -> None:
        super().validate()
        if self.rationales.source not in ("emoshapes", "file", "attributes"):
            raise ValueError(f"rationales.source must be emoshapes, file or attributes, got "
                             f"{self.rationales.source!r}")
        if self.rationales.source == "file" and not self.rationales.file:
            raise ValueError("rationales.source=file needs rationales.file=/path/to/rationales.jsonl")


@dataclass
class EmoSymRewardConfig(EmoSymRunConfig):
    """Step 2: the policy starts from ``model.init`` (step 1's folder), a frozen copy of it is the reference."""
    lr: float = 1e-5  # LoRA, the two token rows and cls_head
    out_dir: str = "runs/emosym-reward"

    def validate(self) -> None:
        if not self.model.init:
            raise ValueError("step 2 starts from step 1's model folder: pass model.init=/path/to/compress/final")
        super().validate()


@dataclass
class EmoSymGenerateConfig(EmoSymRunConfig):
    """Step 3: from ``model.init`` (step 2's, or step 1's, folder), the mappers learn to drive Stable Diffusion
    through the placeholder token; the MLLM is frozen but for the two token rows and the head, SD entirely."""
    diffusion: str = "stable-diffusion-v1-5/stable-diffusion-v1-5"  # Hub id or local diffusers folder
    resolution: int = 512
    mapper_hidden: int = 1024
    ctx_weight: float = 1.0  # c = emo_mapper(h_EMO) + ctx_weight · ctx_mapper(h_CTX)
    ce_weight: float = 1.0  # loss = L_diff + ce_weight · CE
    # a fraction of the prompts name the image's first object after the placeholder ("<emotion> skull")
    object_prompt_fraction: float = 0.0
    emotion_space_components: int = 1  # Gaussians per emotion over (h_EMO, h_CTX)
    lr: float = 1e-4  # the two token rows and cls_head
    lr_mappers: float = 1e-3
    out_dir: str = "runs/emosym-generate"

    def validate(self) -> None:
        if not self.model.init:
            raise ValueError("step 3 starts from step 1's or step 2's model folder: pass model.init=...")
        super().validate()
        if not 0.0 <= self.object_prompt_fraction <= 1.0:
            raise ValueError(f"object_prompt_fraction must lie in [0, 1], got {self.object_prompt_fraction}")
        if self.emotion_space_components < 1:
            raise ValueError("emotion_space_components must be >= 1")


@dataclass
class EmoSymTinyConfig:
    """EmoSym-Tiny: the three steps in the synthetic world, on a UniEmo-Tiny build's EmoShapes, tiny CLIP (the
    rationales' text encoder) and tiny SD (``world``: that build's work folder)."""
    world: str = "runs/tiny-world"  # holds emoshapes/, clip/ and sd/ (train/tiny_world.py's work_dir)
    out: str = "assets/emosym-tiny"
    work_dir: str = "runs/emosym-tiny"
    seed: int = 0
    smoke: bool = False  # a few steps everywhere (CI)
    # where the bundle's emosym.json points for its Stable Diffusion, relative to the bundle: null copies the
    # world's pretrained SD into <out>/diffusion; "../uniemo-tiny/diffusion" shares UniEmo-Tiny's bundled SD,
    # and step 3 then trains against that one (its UNet is the joint-trained one, not the world's)
    diffusion_path: str | None = None
    mllm_steps: int = 5000
    mllm_batch_size: int = 32
    mllm_lr: float = 1e-3
    compress_epochs: int = 10
    compress_lr: float = 2e-3
    lora_r: int = 16
    reward_epochs: int = 1
    reward_lr: float = 2e-4
    # steps 1-2 again with these seeds (besides ``seed``): the reward step's effect, test top-1 before/after
    reward_effect_seeds: tuple[int, ...] = (0, 1, 2)
    generate_epochs: int = 3
    resolution: int = 64  # step 3's, the world's SD resolution
    batch_size: int = 32
