"""The options of a stage-2 run (``uniemo.training.joint.run_joint``, the command line ``train/joint.py``).

``set_trainable`` reads ``JointModelConfig``'s ``train_*`` switches, ``joint_step`` the ``JointLossConfig``
weights and ``build_optimizer`` the ``JointOptimConfig`` learning rates; ``JointConfig`` nests them with the
data, the explicit feedback, the memory bank and the run's own options. The training benchmark
(``uniemo.benchmarks.training``) builds its step from the same defaults. No torch import here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from uniemo.training.data_config import DataConfig


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


@dataclass
class FeedbackConfig:
    manifest: str | None = None  # train/feedback.py's manifest.jsonl: kept generated images to mix in
    proportion: float = 0.2  # p, their share of the mixed training set (paper Table VIII: 0.05-0.3)


@dataclass
class MemoryBankConfig:
    enabled: bool = False  # EmoSym's online memory bank
    every: int = 500  # K: optimizer steps between bank updates
    per_emotion: int = 16  # M: images generated per emotion at each update
    proportion: float = 0.2  # p: the bank's share of the training set (its size stays that of the real set)
    eta: float = 20.0  # the filter's band (uniemo.filtering.select_feedback), per emotion
    delta: float = 80.0
    probe: str | None = None  # train/probe.py run (α probe + its CLIP) scoring P_emo / S_sem; null: model.correlation
    steps: int = 25  # sampler steps for the bank's images
    guidance: float = 7.5
    scheduler: str = "unipc"
    space_per_emotion: int = 64  # training images per emotion for the quick emotion space of each update
    confidence: str = "label"  # label: p(true label) of a real sample | max: max-softmax (EmoSym's)
    confidence_pool: int | None = None  # real samples scored per update (a seeded random subset); null: all
    repeat: bool = True  # fill every bank slot while the bank holds fewer images (p fixed from the first update)


@dataclass
class JointConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: JointModelConfig = field(default_factory=JointModelConfig)
    loss: JointLossConfig = field(default_factory=JointLossConfig)
    optim: JointOptimConfig = field(default_factory=JointOptimConfig)
    feedback: FeedbackConfig = field(default_factory=FeedbackConfig)
    memory_bank: MemoryBankConfig = field(default_factory=MemoryBankConfig)
    out_dir: str = "runs/joint"
    seed: int = 0
    resolution: int = 512  # diffusion training resolution
    batch_size: int = 8  # global batch (split across processes); any size (the official code needs 1)
    grad_accum_steps: int = 1
    epochs: int = 1
    max_steps: int | None = None  # optimizer steps; overrides epochs (0: only fit the emotion space)
    log_every: int = 10
    checkpoint_every: int = 1000
    checkpoints_total_limit: int = 2
    validation_every: int = 500  # steps between validation grids (0 disables)
    validation_steps: int = 25  # sampler steps for the validation grid
    validation_guidance: float = 7.5
    mixed_precision: str | None = None  # no | fp16 | bf16 (frozen UNet / VAE cast to it); null: the launcher's
    resume: str | None = None
    space_batch_size: int = 64  # batch size of the emotion-space pass
    # Gaussians per emotion in the emotion space (1: the paper's); more keep an emotion's separate groups of
    # images apart (uniemo.emotion_space)
    emotion_space_components: int = 1
    # accelerate trackers: tensorboard (event files in out_dir/logs/), any other accelerate tracker name, several
    # separated by commas, "all", or "none"
    report_to: str | None = "tensorboard"
    # seconds a process waits at a collective (all-reduce, barrier, gather) before the run fails; long enough for
    # the slowest work one process does alone (saving a checkpoint, a memory-bank update's share)
    collective_timeout: int = 1800
    # Fraction of images whose diffusion prompt is "<emotion> {one of its objects}" instead of "<emotion>" alone
    # (ours, not the paper's: it teaches c to leave room for a noun, which transfer needs). 0 = the paper.
    object_prompt_fraction: float = 0.0

    def validate(self) -> None:
        if self.emotion_space_components < 1:
            raise ValueError(f"emotion_space_components must be >= 1, got {self.emotion_space_components}")
        if self.model.stage1 == "":
            raise ValueError("model.stage1 is not set: pass the stage-1 model folder (train/understanding.py's final/)")
        if self.loss.condition_variant not in ("paper", "official"):
            raise ValueError(f"loss.condition_variant must be paper or official, got {self.loss.condition_variant!r}")
        if self.mixed_precision not in (None, "no", "fp16", "bf16"):
            raise ValueError(f"mixed_precision must be no, fp16, bf16 or null (the launcher's), "
                             f"got {self.mixed_precision!r}")
        if self.model.train_unet and self.model.copy_diffusion is False:
            raise ValueError("model.train_unet=true with model.copy_diffusion=false would drop the trained UNet: "
                             "leave copy_diffusion unset (or true)")
        if not 0.0 <= self.feedback.proportion < 1.0:
            raise ValueError(f"feedback.proportion must lie in [0, 1), got {self.feedback.proportion}")
        bank = self.memory_bank
        if bank.enabled:
            if self.feedback.manifest:
                raise ValueError("use either feedback.manifest (offline round) or memory_bank.enabled, not both")
            if not 0.0 < bank.proportion < 1.0:
                raise ValueError(f"memory_bank.proportion must lie in (0, 1), got {bank.proportion}")
            if bank.every < 1 or bank.per_emotion < 1 or bank.space_per_emotion < 1:
                raise ValueError("memory_bank.every, per_emotion and space_per_emotion must be >= 1")
            if not 0.0 <= bank.eta <= bank.delta <= 100.0:
                raise ValueError(f"need 0 <= memory_bank.eta <= memory_bank.delta <= 100, got {bank.eta}, {bank.delta}")
            if bank.confidence not in ("label", "max"):
                raise ValueError(f"memory_bank.confidence must be label or max, got {bank.confidence!r}")
            if not (bank.probe or self.model.correlation):
                raise ValueError("the memory bank scores images with an emotion probe: set memory_bank.probe (or "
                                 "model.correlation) to a train/probe.py run folder")
