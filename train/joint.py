"""Stage 2: joint training of understanding and emotion-conditioned generation (paper III-B, METHOD.md 5-6).

Per step (``joint_step``): the classifier encodes the image (L_U: emotion CE + scene/object contrastive);
α_Scene and α_Object are looked up at the ground-truth emotion for the attributes nearest to the pooled
queries; the mappers fuse cls/scene/object embeds into the condition c (Eq. 6); the condition head gives
L_cond (Eq. 7); c replaces the placeholder token's embedding per sample (``encode_condition``) and the frozen
UNet's ε-prediction MSE on the VAE latents gives L_diff (Eq. 8). L = γ1·L_U + γ2·L_cond + γ3·L_diff.

Trained by default: queries, Interactive Blocks, mappers, condition head, contrastive projections. Frozen with
``requires_grad_(False)`` (no gradient memory): UNet, VAE, diffusion text encoder, CLIP backbone, emotion head.
Each group is a switch (``model.train_*``). At the end the emotion space is fitted on the training split
(evaluation transform, gathered over processes) and the model folder of INTERFACES.md is written.

Launch:
    python train/joint.py --preset tiny model.stage1=RUN1/final model.diffusion=SD_DIR data.root=DATA
    accelerate launch --num_processes 4 --mixed_precision fp16 train/joint.py --preset emoset-sd15 \
        model.stage1=runs/emoset-vit-l-14/final model.correlation=runs/probe data.root=/data/EmoSet-118K
    torchrun --nproc_per_node 2 train/joint.py --preset tiny ...        # several CPU processes (gloo)

Explicit feedback (METHOD.md section 7): ``feedback.manifest=runs/fb/manifest.jsonl`` (train/feedback.py) mixes
the kept generated images into the training set at ``feedback.proportion`` p (0.2); with ``model.stage1``,
``model.init_fusion`` and ``model.correlation`` all set to the previous model folder, stage 2 continues from it.
The online memory bank (EmoSym): ``memory_bank.enabled=true``; every ``memory_bank.every`` steps the current
model generates ``memory_bank.per_emotion`` images per emotion (conditions sampled from an emotion space fitted
on a few training images with the current encoder), the filter of Algorithm 1 keeps some, and the bank takes
the slots of the real samples the classifier is most confident about (``uniemo.memory_bank``). Generated images
(records with ``generated`` true) feed the understanding losses only: ``joint_step`` leaves them out of L_cond
and L_diff.

Writes to ``out_dir``: ``config.yaml``, ``metrics.jsonl``, ``checkpoints/checkpoint-<step>/`` (``resume=latest``),
``validation/step-<step>.png`` (a fixed-seed grid per emotion), ``memory_bank/`` (with the bank: the images of
each update, their scores, ``state.json``) and ``final/`` (the UniEmo model folder).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import json  # noqa: E402
import os  # noqa: E402
import logging  # noqa: E402
import shutil  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from train.understanding import (DataConfig, _latest_checkpoint, cosine_with_warmup, cpu_processes,  # noqa: E402
                                 freeze_gradless)
from uniemo.config import parse_config, save_config  # noqa: E402

logger = logging.getLogger("uniemo.train.joint")
PRESETS = {p.stem.replace("joint_", ""): p for p in (Path(__file__).parent / "configs").glob("joint_*.yaml")}
FORMAT_VERSION = 1


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
    copy_diffusion: bool | None = None  # write diffusion/ into the model folder; null = only for local bases
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
    condition_margin: float = 0.1  # ξ (official 0.5)
    condition_variant: str = "paper"  # paper | official (raw-logit margin + CE, weights 1e-3 / 1e-6)


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
class Config:
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
    mixed_precision: str = "no"  # no | fp16 | bf16 (frozen UNet / VAE are cast to it)
    resume: str | None = None
    space_batch_size: int = 64  # batch size of the emotion-space pass
    # Fraction of images whose diffusion prompt is "<emotion> {one of its objects}" instead of "<emotion>" alone
    # (ours, not the paper's: it teaches c to leave room for a noun, which transfer needs). 0 = the paper.
    object_prompt_fraction: float = 0.0

    def validate(self) -> None:
        if self.model.stage1 == "":
            raise ValueError("model.stage1 is not set: pass the stage-1 model folder (train/understanding.py's final/)")
        if self.loss.condition_variant not in ("paper", "official"):
            raise ValueError(f"loss.condition_variant must be paper or official, got {self.loss.condition_variant!r}")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ValueError(f"mixed_precision must be no, fp16 or bf16, got {self.mixed_precision!r}")
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


# ----------------------------------------------------------------------------------------------------------


class UnderstandingAndFusion(nn.Module):
    """The trainable half: classifier + fusion, one module so that accelerate/DDP wraps it once.

    ``forward`` returns the classifier output, the fused condition c and its condition-head logits.
    """

    def __init__(self, classifier, fusion, correlation):
        super().__init__()
        self.classifier, self.fusion = classifier, fusion
        self.correlation = correlation  # CorrelationTable or None (α = 1); not a module, holds no parameters

    def alphas(self, out, emotion_idx: torch.Tensor):
        """α_Scene, α_Object (B,) at ``emotion_idx`` for the attributes nearest to the pooled queries."""
        if self.correlation is None:
            ones = torch.ones(len(emotion_idx), device=out.cls_embed.device)
            return ones, ones
        with torch.no_grad():
            scene_pts, object_pts = self.classifier.project_queries(out)
            s_idx, o_idx, _, _ = self.correlation.match(scene_pts.float(), object_pts.float())
            a_s, a_o = self.correlation.lookup(s_idx, o_idx, emotion_idx)
        return a_s.to(out.cls_embed.device), a_o.to(out.cls_embed.device)

    def forward(self, pixel_values: torch.Tensor, emotion_idx: torch.Tensor):
        out = self.classifier(pixel_values)
        a_s, a_o = self.alphas(out, emotion_idx)
        condition = self.fusion(out.cls_embed, out.scene_embed, out.object_embed, a_s, a_o)
        return out, condition, self.fusion.condition_logits(condition)


def classifier_view(images01: torch.Tensor, config) -> torch.Tensor:
    """[0, 1] images at the diffusion resolution -> the classifier's input (its size and normalisation)."""
    x = F.interpolate(images01, size=(config.image_size, config.image_size), mode="bicubic",
                      antialias=True, align_corners=False).clamp(0, 1)
    mean = torch.tensor(config.image_mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(config.image_std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


def joint_step(models: dict, batch: dict, cfg: Config, generator: torch.Generator) -> dict[str, callable]:
    """The only place the understanding and generation halves meet.

    Args:
        models: ``joint`` (UnderstandingAndFusion, possibly DDP-wrapped), ``vae``, ``unet``, ``text_encoder``,
            ``tokenizer``, ``noise_scheduler``, ``placeholder_id``, ``attributes``, ``weight_dtype``.
        batch: ``pixel_values`` (B, 3, R, R) in [0, 1] at the diffusion resolution, ``labels``, attributes.
    Returns:
        name -> zero-argument callable for each loss term (weight-0 terms are never evaluated).
    """
    from uniemo.diffusion import encode_condition
    from uniemo.losses import (condition_negatives, diffusion_loss, emotion_ce_loss, emotion_condition_loss,
                               expert_contrastive_loss, official_condition_loss, weighted_sum)

    joint = models["joint"]
    inner = getattr(joint, "module", joint)
    device = batch["pixel_values"].device
    images = batch["pixel_values"]
    labels = batch["labels"].to(device)
    out, condition, condition_logits = joint(classifier_view(images, inner.classifier.config), labels)
    # Generated images (explicit feedback, memory bank) feed the understanding losses only: training the
    # generation half on the model's own outputs would reinforce its own mistakes.
    generated = batch.get("generated")
    real = None if generated is None or not bool(generated.any()) else ~generated.to(device)
    scene_ids, object_ids, scene_text, object_text = models["attributes"].batch(
        batch["scene"], batch["objects"], generator, device)
    lc = cfg.loss

    def understanding():
        projected = {}

        def project():
            if not projected:
                projected["s"], projected["o"] = inner.classifier.project_queries(out)
            return projected["s"], projected["o"]

        total, _ = weighted_sum({"emotion": lc.emotion, "scene": lc.scene, "object": lc.object}, {
            "emotion": lambda: emotion_ce_loss(out.logits, labels),
            "scene": lambda: expert_contrastive_loss(project()[0], scene_text, scene_ids, lc.temperature, lc.symmetric),
            "object": lambda: expert_contrastive_loss(project()[1], object_text, object_ids, lc.temperature,
                                                      lc.symmetric),
        })
        return total

    def condition_term():
        logits, cond_logits, target = out.logits, condition_logits, labels
        if real is not None:
            if not bool(real.any()):
                return condition_logits.sum() * 0.0  # a batch of generated images only: nothing to learn here
            logits, cond_logits, target = logits[real], cond_logits[real], target[real]
        negatives = condition_negatives(logits.detach(), target)
        if lc.condition_variant == "official":
            return official_condition_loss(cond_logits, target, negatives, margin=lc.condition_margin)
        return emotion_condition_loss(cond_logits, target, negatives, margin=lc.condition_margin)

    def diffusion_term():
        vae, unet, scheduler = models["vae"], models["unet"], models["noise_scheduler"]
        wd = models["weight_dtype"]
        pixels, cond = images, condition
        if real is not None:
            if not bool(real.any()):  # zero gradients still reach every trainable parameter (DDP needs them)
                return (condition.sum() + sum(p.sum() for p in unet.parameters() if p.requires_grad)) * 0.0
            pixels, cond = images[real], condition[real]  # (B_real, ...)
        with torch.no_grad():
            # Convert images to latent space (frozen VAE)
            latents = vae.encode((pixels * 2 - 1).to(wd)).latent_dist.sample(generator=None)
            latents = latents * vae.config.scaling_factor
        # Sample noise and a random timestep per image, and add the noise (forward diffusion)
        noise = torch.randn(latents.shape, generator=generator, dtype=latents.dtype).to(device)
        timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (latents.shape[0],), generator=generator)
        timesteps = timesteps.to(device)
        noisy_latents = scheduler.add_noise(latents, noise, timesteps)
        # The condition enters through the placeholder token, per sample and differentiably
        prompts = models["prompt"]
        if cfg.object_prompt_fraction > 0:
            rows = real.nonzero().flatten().tolist() if real is not None else range(len(images))
            draws = torch.rand(len(rows), generator=generator).tolist()
            prompts = [f"{models['prompt']} {batch['objects'][i][0]}"
                       if batch["objects"][i] and u < cfg.object_prompt_fraction else models["prompt"]
                       for i, u in zip(rows, draws)]
        prompt_embeds = encode_condition(models["text_encoder"], models["tokenizer"], cond.to(wd),
                                         prompts, models["placeholder_id"])
        model_pred = unet(noisy_latents, timesteps, encoder_hidden_states=prompt_embeds).sample
        if scheduler.config.prediction_type == "v_prediction":
            target = scheduler.get_velocity(latents, noise, timesteps)
        else:
            target = noise
        return diffusion_loss(model_pred, target)

    return {"understanding": understanding, "condition": condition_term, "diffusion": diffusion_term}


class JointTransform:
    """PIL -> [0, 1] tensor at the diffusion resolution; the classifier view is derived from it on device."""

    def __init__(self, resolution: int, train: bool):
        from torchvision import transforms as T

        geometry = ([T.RandomResizedCrop(resolution, scale=(0.5, 1.0), interpolation=T.InterpolationMode.BICUBIC),
                     T.RandomHorizontalFlip()] if train else
                    [T.Resize(resolution, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(resolution)])
        self.transform = T.Compose([*geometry, T.ToTensor()])

    def __call__(self, image):
        return self.transform(image)


def load_components(cfg: Config, device):
    """Stage-1 classifier, attributes, correlation table, fusion, and the Stable Diffusion parts."""
    from uniemo.attributes import AttributeTargets
    from uniemo.classifier import EmoClassifier
    from uniemo.diffusion import add_placeholder_token, load_stable_diffusion
    from uniemo.fusion import EmoFusion, EmoFusionConfig

    stage1 = Path(cfg.model.stage1)
    classifier_dir = stage1 / "classifier" if (stage1 / "classifier").is_dir() else stage1
    classifier = EmoClassifier.from_pretrained(classifier_dir)
    if not classifier.config.use_queries:
        raise ValueError("stage 2 needs a classifier with expert queries (use_queries=true)")
    attributes = AttributeTargets.load(stage1)
    correlation = None
    if cfg.model.correlation:
        from uniemo.correlation import CorrelationTable

        correlation = CorrelationTable.load(cfg.model.correlation)
        if tuple(correlation.emotions) != tuple(classifier.config.emotions):
            raise ValueError(f"correlation table emotions {correlation.emotions} differ from the classifier's")
    pipe = load_stable_diffusion(cfg.model.diffusion)
    placeholder_id = add_placeholder_token(pipe.tokenizer, pipe.text_encoder,
                                           initializer_token=cfg.model.placeholder_initializer)
    text_width = pipe.text_encoder.get_input_embeddings().embedding_dim
    if cfg.model.init_fusion:
        # Continue from a trained model (explicit feedback's next round): its mappers, not a fresh init.
        init = Path(cfg.model.init_fusion)
        fusion = EmoFusion.from_pretrained(init / "fusion" if (init / "fusion").is_dir() else init)
        fc = fusion.config
        if (fc.vision_width, fc.text_width, tuple(fc.emotions)) != (classifier.config.width, text_width,
                                                                    tuple(classifier.config.emotions)):
            raise ValueError(f"model.init_fusion {init} (vision width {fc.vision_width}, text width {fc.text_width}, "
                             f"emotions {fc.emotions}) does not fit the classifier and the diffusion text encoder")
    else:
        fusion = EmoFusion(EmoFusionConfig(vision_width=classifier.config.width, hidden_size=cfg.model.fusion_hidden,
                                           text_width=text_width, num_classes=classifier.config.num_classes,
                                           emotions=classifier.config.emotions))
    return classifier, attributes, correlation, fusion, pipe, placeholder_id


def set_trainable(classifier, fusion, unet, mc: JointModelConfig) -> None:
    """requires_grad per group (frozen modules spend no gradient memory)."""
    groups = classifier.parameter_groups()
    switches = {"backbone": mc.train_backbone, "queries": mc.train_queries, "projections": mc.train_projections,
                "head": mc.train_head}
    for group, named in groups.items():
        learnable_proj = classifier.config.learnable_proj or group != "projections"
        for _, p in named:
            p.requires_grad_(switches[group] and learnable_proj)
    fusion.requires_grad_(True)
    unet.requires_grad_(mc.train_unet)


def build_optimizer(classifier, fusion, unet, oc: JointOptimConfig):
    lrs = {"backbone": oc.lr_backbone, "queries": oc.lr_queries, "projections": oc.lr_projections,
           "head": oc.lr_head}
    named_groups = {g: [p for _, p in named] for g, named in classifier.parameter_groups().items()}
    named_groups["mappers"] = list(fusion.parameters())
    named_groups["unet"] = list(unet.parameters())
    lrs.update(mappers=oc.lr_mappers, unet=oc.lr_unet)
    groups = []
    for name, params in named_groups.items():
        params = [p for p in params if p.requires_grad]
        for subset, wd in (([p for p in params if p.ndim >= 2], oc.weight_decay), ([p for p in params if p.ndim < 2], 0.0)):
            if subset:
                groups.append({"params": subset, "lr": lrs[name], "weight_decay": wd, "name": name})
    if not groups:
        raise ValueError("nothing to train: every model.train_* switch is off")
    return torch.optim.AdamW(groups, betas=tuple(oc.betas))


@torch.no_grad()
def fit_emotion_space(classifier, dataset, accelerator, batch_size: int, num_workers: int):
    """Encoder features over ``dataset`` (eval mode, eval transform), gathered over processes, fitted once."""
    from tqdm.auto import tqdm

    from uniemo.data import collate_records
    from uniemo.emotion_space import EmotionSpace

    loader = accelerator.prepare(DataLoader(dataset, batch_size=batch_size, shuffle=False,
                                            num_workers=num_workers, collate_fn=collate_records))
    was_training = classifier.training
    classifier.eval()
    feats = {"cls": [], "scene": [], "object": []}
    labels = []
    for batch in tqdm(loader, desc="emotion space", disable=not accelerator.is_local_main_process):
        if batch is None:
            continue
        f = classifier.forward_features(batch["pixel_values"].to(accelerator.device))
        gathered = accelerator.gather_for_metrics(
            (f.cls_embed.float(), f.scene_embed.float(), f.object_embed.float(), batch["labels"]))
        for key, value in zip(("cls", "scene", "object"), gathered[:3]):
            feats[key].append(value.cpu())
        labels.append(gathered[3].cpu())
    classifier.train(was_training)
    return EmotionSpace.fit({k: torch.cat(v) for k, v in feats.items()}, torch.cat(labels),
                            tuple(classifier.config.emotions))


@torch.no_grad()
def validation_conditions(inner, dataset, attributes, device, per_emotion: int = 8):
    """One condition per emotion from the mean embeddings of a few val images (fixed, no sampling)."""
    from uniemo.data import collate_records

    emotions = inner.classifier.config.emotions
    chosen: dict[int, list[int]] = {e: [] for e in range(len(emotions))}
    for i, entry in enumerate(dataset.entries):
        if len(chosen[entry.label]) < per_emotion:
            chosen[entry.label].append(i)
    conditions = []
    was_training = inner.training
    inner.eval()
    for e, idx in chosen.items():
        if not idx:
            conditions.append(None)
            continue
        batch = collate_records([dataset[i] for i in idx])
        if batch is None:
            conditions.append(None)
            continue
        out = inner.classifier(classifier_view(batch["pixel_values"].to(device), inner.classifier.config))
        label = torch.full((1,), e, device=device)
        mean = lambda t: t.mean(0, keepdim=True)  # noqa: E731
        a_s, a_o = inner.alphas(type(out)(cls_embed=mean(out.cls_embed), scene_embed=mean(out.scene_embed),
                                          object_embed=mean(out.object_embed)), label)
        conditions.append(inner.fusion(mean(out.cls_embed), mean(out.scene_embed), mean(out.object_embed), a_s, a_o))
    inner.train(was_training)
    return conditions


@torch.no_grad()
def log_validation(pipe, conditions, emotions, placeholder_id, cfg: Config, path: Path) -> None:
    """A fixed-seed image per emotion (seed = emotion index), saved as one labelled strip."""
    from PIL import Image, ImageDraw

    from uniemo.diffusion import encode_condition, encode_prompt

    tiles = []
    size = cfg.resolution
    for e, condition in enumerate(conditions):
        if condition is None:
            tiles.append(Image.new("RGB", (size, size)))
            continue
        dtype = pipe.unet.dtype
        prompt_embeds = encode_condition(pipe.text_encoder, pipe.tokenizer, condition.to(dtype), "<emotion>",
                                         placeholder_id)
        negative = encode_prompt(pipe.text_encoder, pipe.tokenizer, [""])
        image = pipe(prompt_embeds=prompt_embeds, negative_prompt_embeds=negative, height=size, width=size,
                     num_inference_steps=cfg.validation_steps, guidance_scale=cfg.validation_guidance,
                     generator=torch.Generator().manual_seed(e)).images[0]
        tiles.append(image)
    label_h = 14
    grid = Image.new("RGB", (size * len(tiles), size + label_h), "white")
    draw = ImageDraw.Draw(grid)
    for i, (tile, name) in enumerate(zip(tiles, emotions)):
        grid.paste(tile, (i * size, label_h))
        draw.text((i * size + 2, 1), name, fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)


@torch.no_grad()
def quick_emotion_space(classifier, dataset, per_emotion: int, batch_size: int, device, seed: int):
    """An emotion space from ``per_emotion`` random training images of each emotion (current encoder, eval mode).

    The memory bank generates from the model as it is now; refitting on the whole split at every update would
    cost a full pass, while a few dozen images per emotion already place each Gaussian.
    """
    from tqdm.auto import tqdm

    from uniemo.data import collate_records
    from uniemo.emotion_space import EmotionSpace

    g = torch.Generator().manual_seed(seed)
    labels = torch.tensor([entry.label for entry in dataset.entries])
    chosen = []
    for e in range(len(dataset.labels)):
        members = torch.nonzero(labels == e).flatten()
        chosen += members[torch.randperm(len(members), generator=g)[:per_emotion]].tolist()
    feats: dict[str, list] = {"cls": [], "scene": [], "object": []}
    seen = []
    was_training = classifier.training
    classifier.eval()
    for start in tqdm(range(0, len(chosen), batch_size), desc="bank: emotion space", unit="batch"):
        batch = collate_records([dataset[i] for i in chosen[start:start + batch_size]])
        if batch is None:
            continue
        f = classifier.forward_features(batch["pixel_values"].to(device))
        for key, value in zip(("cls", "scene", "object"), (f.cls_embed, f.scene_embed, f.object_embed)):
            feats[key].append(value.float().cpu())
        seen.append(batch["labels"])
    classifier.train(was_training)
    return EmotionSpace.fit({k: torch.cat(v) for k, v in feats.items()}, torch.cat(seen),
                            tuple(classifier.config.emotions))


@torch.no_grad()
def real_confidences(classifier, dataset, indices: list[int], batch_size: int, device, kind: str):
    """The classifier's confidence on the *real* samples ``indices`` (eval transform): p(true label) or max p.

    Returns:
        (N,) float64 numpy array over the whole dataset, NaN where a sample was not scored.
    """
    import numpy as np
    from tqdm.auto import tqdm

    from uniemo.data import collate_records

    out = np.full(len(dataset), np.nan)
    was_training = classifier.training
    classifier.eval()
    for start in tqdm(range(0, len(indices), batch_size), desc="bank: real confidences", unit="batch"):
        batch = collate_records([dataset[i] for i in indices[start:start + batch_size]])
        if batch is None:
            continue
        probs = classifier(batch["pixel_values"].to(device)).logits.float().softmax(dim=-1).cpu()
        conf = (probs.gather(1, batch["labels"][:, None]).squeeze(1) if kind == "label"
                else probs.max(dim=-1).values)
        out[batch["index"].numpy()] = conf.double().numpy()
    classifier.train(was_training)
    return out


def update_memory_bank(bank, joint, pipe, placeholder_id, attributes, correlation, scorer, space_set,
                       cfg: Config, step: int, device, bank_dir: Path) -> dict:
    """One bank update (main process): generate M per emotion, filter (Alg. 1), score the real samples, swap.

    Returns:
        A log record; the bank's state is also written to ``bank_dir/state.json`` for the other processes.
    """
    from tqdm.auto import tqdm

    from uniemo.data.base import ImageEntry
    from uniemo.filtering import select_feedback
    from uniemo.memory_bank import confidence_pool
    from uniemo.pipeline import UniEmoPipeline

    mb = cfg.memory_bank
    t0 = time.time()
    inner = getattr(joint, "module", joint)
    emotions = tuple(inner.classifier.config.emotions)
    out = bank_dir / f"step-{step:06d}"
    # Conditions from the model as it is now: a quick emotion space, then the stock inference path
    space = quick_emotion_space(inner.classifier, space_set, mb.space_per_emotion, cfg.space_batch_size, device,
                                seed=cfg.seed * 100_003 + step)
    saved_scheduler = pipe.scheduler
    paths, intended = [], []
    try:
        generator = UniEmoPipeline(inner.classifier, inner.fusion, space, attributes, pipe, placeholder_id,
                                   correlation, resolution=cfg.resolution).to(device)
        generator.set_scheduler(mb.scheduler)
        for e, emotion in enumerate(tqdm(emotions, desc="bank: generate", unit="emotion")):
            (out / emotion).mkdir(parents=True, exist_ok=True)
            base = (cfg.seed * 100_003 + step) * 100_000 + 1000 * e  # image i: base + i, distinct per update
            for start in range(0, mb.per_emotion, 16):
                count = min(16, mb.per_emotion - start)
                images = generator.generate(emotion, num_images=count, seed=base + start,
                                            num_inference_steps=mb.steps, guidance_scale=mb.guidance)
                for i, image in enumerate(images, start=start):
                    path = out / emotion / f"{emotion}_{i:04d}.png"
                    image.save(path)
                    paths.append(str(path))
                    intended.append(e)
    finally:
        # UniEmoPipeline switched the shared SD pipeline's sampler and put the modules in eval mode
        pipe.scheduler = saved_scheduler
        joint.train()

    # Algorithm 1 on the new images, bands within each emotion
    scores = scorer.feedback_scores(paths, intended, progress="bank: score")
    kept = select_feedback(scores["emotion_score"], scores["semantic_score"], mb.eta, mb.delta, groups=intended)
    items = [ImageEntry(path=paths[i], label=intended[i]) for i in kept]

    # The real samples' confidence, from the real images (EmoSym's code scored the generated ones here)
    pool = confidence_pool(bank.num_real, mb.confidence_pool, cfg.seed * 100_003 + step)
    confidences = real_confidences(inner.classifier, space_set, pool, cfg.space_batch_size, device, mb.confidence)
    joint.train()
    replaced = bank.update(items, confidences)

    kept_set = set(kept)
    (out / "scores.json").write_text(json.dumps({"step": step, "candidates": [
        {"path": p, "emotion": emotions[e], "emotion_score": float(scores["emotion_score"][i]),
         "semantic_score": float(scores["semantic_score"][i]), "kept": i in kept_set}
        for i, (p, e) in enumerate(zip(paths, intended))]}, indent=1) + "\n")
    (bank_dir / "state.json").write_text(json.dumps({"step": step, **bank.state_dict()}) + "\n")
    return {"generated": len(paths), "kept": len(kept), "bank_images": len(bank.items), "bank_slots": bank.num_slots,
            "replaced": len(replaced), "generated_share": bank.generated_share(),
            "mean_replaced_confidence": float(confidences[replaced].mean()) if replaced else None,
            "seconds": round(time.time() - t0, 2)}


def write_model_folder(out: Path, inner, attributes, correlation, space, pipe, cfg: Config) -> None:
    """The model folder of INTERFACES.md (loaded by ``UniEmoPipeline.from_pretrained``)."""
    out.mkdir(parents=True, exist_ok=True)
    inner.classifier.save_pretrained(out / "classifier")
    inner.fusion.save_pretrained(out / "fusion")
    attributes.save(out)
    space.save(out)
    components = ["classifier", "fusion", "attributes", "emotion_space"]
    if correlation is not None:
        correlation.save(out)
        components.append("correlation")
    base = cfg.model.diffusion
    local = Path(base).exists()
    copy = cfg.model.copy_diffusion if cfg.model.copy_diffusion is not None else local
    if copy:
        # write beside, then swap in: a half-written or concurrently replaced folder never stays behind
        staging = out / f".diffusion-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        pipe.save_pretrained(staging, safe_serialization=True)
        shutil.rmtree(out / "diffusion", ignore_errors=True)
        os.replace(staging, out / "diffusion")
        base = "diffusion/"
        components.append("diffusion")
    (out / "uniemo.json").write_text(json.dumps({
        "format_version": FORMAT_VERSION,
        "emotions": list(inner.classifier.config.emotions),
        "components": components,
        "diffusion": base,
        "placeholder_token": "<emotion>",
        "resolution": cfg.resolution,
        "stage1": str(cfg.model.stage1),
    }, indent=2) + "\n")


# ----------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict:
    """Run stage 2 and fit the emotion space. Returns a summary (also in metrics.jsonl)."""
    cfg = parse_config(Config, argv, presets=PRESETS, description=__doc__)

    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from diffusers import DDPMScheduler
    from tqdm.auto import tqdm

    from uniemo.data import build_dataset, build_transform, collate_records
    from uniemo.data.sampler import EpochSampler, SeededAugmentation
    from uniemo.losses import weighted_sum

    accelerator = Accelerator(cpu=cpu_processes(), mixed_precision=cfg.mixed_precision,
                              gradient_accumulation_steps=cfg.grad_accum_steps, step_scheduler_with_optimizer=False)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("accelerate").setLevel(logging.WARNING)
    set_seed(cfg.seed)
    out_dir = Path(cfg.out_dir)
    if accelerator.is_main_process:
        out_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out_dir / "config.yaml")
    device = accelerator.device
    weight_dtype = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[cfg.mixed_precision]

    # Models: load, freeze, unfreeze
    classifier, attributes, correlation, fusion, pipe, placeholder_id = load_components(cfg, device)
    pipe.set_progress_bar_config(disable=True)
    vae, unet, text_encoder = pipe.vae, pipe.unet, pipe.text_encoder
    vae.requires_grad_(False).eval()
    text_encoder.requires_grad_(False).eval()
    set_trainable(classifier, fusion, unet, cfg.model)
    # Frozen modules are moved by hand (not prepared) and cast to the mixed-precision dtype.
    vae.to(device, dtype=weight_dtype)
    text_encoder.to(device, dtype=weight_dtype)
    unet.to(device, dtype=torch.float32 if cfg.model.train_unet else weight_dtype)
    if not cfg.model.train_unet:
        unet.eval()
    noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    joint = UnderstandingAndFusion(classifier, fusion, correlation)

    # Data
    if not cfg.data.root:
        raise ValueError("data.root is not set: pass data.root=/path/to/dataset")
    on_error = "skip" if cfg.data.skip_unreadable else "raise"
    extra = {"num_classes": cfg.data.num_classes} if cfg.data.dataset in ("emoset", "emoshapes") else {}
    train_set = build_dataset(cfg.data.dataset, cfg.data.root, cfg.data.train_split,
                              JointTransform(cfg.resolution, True), on_error, **extra)
    if tuple(train_set.labels) != tuple(classifier.config.emotions):
        raise ValueError(f"dataset labels {train_set.labels} differ from the model's {classifier.config.emotions}")
    if cfg.data.max_train_samples:
        train_set.entries = train_set.entries[:cfg.data.max_train_samples]
    val_set = build_dataset(cfg.data.dataset, cfg.data.root, cfg.data.val_split,
                            JointTransform(cfg.resolution, False), on_error, **extra)
    arch = classifier.config
    space_set = build_dataset(cfg.data.dataset, cfg.data.root, cfg.data.train_split,
                              build_transform(arch.image_size, False, arch.image_mean, arch.image_std),
                              on_error, **extra)
    space_set.entries = train_set.entries

    # What the sampler draws from: the real set, the real set plus kept generated images (an offline feedback
    # round), or the real set with a memory bank in the slots of its most confident samples
    train_data, bank, banked, scorer = train_set, None, None, None
    if cfg.feedback.manifest:
        from uniemo.data.feedback import FeedbackDataset, MixedDataset

        generated = FeedbackDataset.from_manifest(cfg.feedback.manifest, train_set.labels,
                                                  JointTransform(cfg.resolution, True), on_error)
        train_data = MixedDataset(train_set, generated, cfg.feedback.proportion, cfg.seed)
        accelerator.print(f"training on {train_data}")
    if cfg.memory_bank.enabled:
        from uniemo.memory_bank import BankedDataset, MemoryBank
        from uniemo.scoring import ImageScorer

        mb = cfg.memory_bank
        bank = MemoryBank(len(train_set), mb.proportion, mb.repeat)
        if mb.confidence_pool is not None and mb.confidence_pool < bank.capacity:
            raise ValueError(f"memory_bank.confidence_pool ({mb.confidence_pool}) is smaller than the bank's "
                             f"{bank.capacity} slots: score at least that many real samples")
        banked = train_data = BankedDataset(train_set, bank, JointTransform(cfg.resolution, True))
        if accelerator.is_main_process:
            scorer = ImageScorer.from_probe_run(mb.probe or cfg.model.correlation, attributes.scenes,
                                                attributes.objects, device=device)
    train_aug = SeededAugmentation(train_data, cfg.seed)
    sampler = EpochSampler(len(train_data), cfg.batch_size, cfg.seed, accelerator.process_index,
                           accelerator.num_processes)
    train_loader = DataLoader(train_aug, batch_size=cfg.batch_size // accelerator.num_processes, sampler=sampler,
                              num_workers=cfg.data.num_workers, collate_fn=collate_records,
                              generator=torch.Generator().manual_seed(cfg.seed))

    # Optimiser and schedule
    steps_per_epoch = max(1, sampler.batches_per_epoch // cfg.grad_accum_steps)
    total_steps = cfg.max_steps if cfg.max_steps is not None else cfg.epochs * steps_per_epoch
    models = {"joint": joint, "vae": vae, "unet": unet, "text_encoder": text_encoder, "tokenizer": pipe.tokenizer,
              "noise_scheduler": noise_scheduler, "placeholder_id": placeholder_id, "attributes": attributes,
              "weight_dtype": weight_dtype, "prompt": "<emotion>"}
    weights = {"understanding": cfg.loss.understanding, "condition": cfg.loss.condition,
               "diffusion": cfg.loss.diffusion}
    if accelerator.num_processes > 1:  # DDP: every trainable parameter must get a gradient at every step
        first = next(b for b in train_loader if b is not None)
        first["pixel_values"] = first["pixel_values"].to(device)

        def first_loss():
            with accelerator.autocast():
                terms = joint_step({**models, "joint": joint.to(device)}, first, cfg, torch.Generator().manual_seed(0))
                return weighted_sum(weights, terms)[0]

        frozen = freeze_gradless({"joint": joint, "unet": unet}, first_loss)
        if frozen:
            accelerator.print(f"frozen, no weighted loss reaches them: {', '.join(frozen)}")
    optimizer = build_optimizer(classifier, fusion, unet, cfg.optim)
    scheduler = cosine_with_warmup(optimizer, int(cfg.optim.warmup_ratio * total_steps), max(1, total_steps))
    joint, optimizer, scheduler = accelerator.prepare(joint, optimizer, scheduler)
    if cfg.model.train_unet:
        unet = accelerator.prepare(unet)
    inner = accelerator.unwrap_model(joint)
    models.update(joint=joint, unet=unet)

    # Resume
    step = 0
    ckpt_dir = out_dir / "checkpoints"
    if cfg.resume:
        resume_dir = _latest_checkpoint(ckpt_dir) if cfg.resume == "latest" else Path(cfg.resume)
        if resume_dir is None or not resume_dir.is_dir():
            raise FileNotFoundError(f"no checkpoint to resume from at {cfg.resume!r} (looked in {ckpt_dir})")
        accelerator.load_state(str(resume_dir))
        step = json.loads((resume_dir / "trainer_state.json").read_text())["step"]
        if bank is not None and (resume_dir / "memory_bank.json").is_file():
            bank.load_state_dict(json.loads((resume_dir / "memory_bank.json").read_text()))
            banked.refresh()
        accelerator.print(f"resumed from {resume_dir} at step {step}")

    metrics_file = out_dir / "metrics.jsonl"

    def log(record: dict) -> None:
        if accelerator.is_main_process:
            with metrics_file.open("a") as f:
                f.write(json.dumps(record) + "\n")

    def save_checkpoint() -> None:
        accelerator.wait_for_everyone()
        path = ckpt_dir / f"checkpoint-{step}"
        accelerator.save_state(str(path))
        if accelerator.is_main_process:
            (path / "trainer_state.json").write_text(json.dumps({"step": step}))
            if bank is not None:  # the bank's images stay in out_dir/memory_bank/
                (path / "memory_bank.json").write_text(json.dumps(bank.state_dict()) + "\n")
            old = sorted(ckpt_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
            for stale in old[:-cfg.checkpoints_total_limit]:
                shutil.rmtree(stale, ignore_errors=True)

    def refresh_bank() -> None:
        bank_dir = out_dir / "memory_bank"
        if accelerator.is_main_process:
            record = update_memory_bank(bank, joint, pipe, placeholder_id, attributes, correlation, scorer,
                                        space_set, cfg, step, device, bank_dir)
            log({"step": step, "memory_bank": record})
        accelerator.wait_for_everyone()
        if not accelerator.is_main_process:
            bank.load_state_dict(json.loads((bank_dir / "state.json").read_text()))
        banked.refresh()

    def validate() -> None:
        if accelerator.is_main_process:
            conditions = validation_conditions(inner, val_set, attributes, device)
            log_validation(pipe, conditions, arch.emotions, placeholder_id, cfg,
                           out_dir / "validation" / f"step-{step:06d}.png")
        accelerator.wait_for_everyone()

    # Train
    joint.train()
    progress = tqdm(total=total_steps, initial=step, desc="stage 2", disable=not accelerator.is_local_main_process)
    t0, running, skipped = time.time(), {}, 0
    while step < total_steps:
        epoch, start_batch = divmod(step * cfg.grad_accum_steps, sampler.batches_per_epoch)
        sampler.set_epoch(epoch, start_batch)
        train_aug.epoch = epoch
        for batch in train_loader:
            if batch is None:
                continue
            skipped += batch["num_skipped"]
            batch["pixel_values"] = batch["pixel_values"].to(device)
            generator = torch.Generator().manual_seed(cfg.seed * 7919 + step * 31 + accelerator.process_index)
            with accelerator.accumulate(joint):
                with accelerator.autocast():
                    terms = joint_step(models, batch, cfg, generator)
                    loss, logged = weighted_sum(weights, terms)
                accelerator.backward(loss)
                if accelerator.sync_gradients and cfg.optim.grad_clip > 0:
                    accelerator.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]],
                                                cfg.optim.grad_clip)
                optimizer.step()
                if accelerator.sync_gradients:  # once per optimizer step, whatever the process count
                    scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            if not accelerator.sync_gradients:
                continue
            step += 1
            for k, v in logged.items():
                running[k] = running.get(k, 0.0) + v.item()
            running["total"] = running.get("total", 0.0) + loss.item()
            progress.update(1)
            progress.set_postfix(loss=f"{loss.item():.4f}")
            if step % cfg.log_every == 0 or step == total_steps:
                n = cfg.log_every if step % cfg.log_every == 0 else step % cfg.log_every
                log({"step": step, "epoch": epoch, "lr": scheduler.get_last_lr()[0],
                     **{f"train/loss_{k}": v / n for k, v in running.items()}, "skipped_images": skipped,
                     "seconds": round(time.time() - t0, 2)})
                running = {}
            if cfg.validation_every and step % cfg.validation_every == 0:
                validate()
            # The bank changes before the checkpoint of this step, so that a resumed run starts from its new state
            bank_changed = bank is not None and step % cfg.memory_bank.every == 0 and step < total_steps
            if bank_changed:
                refresh_bank()
            if step % cfg.checkpoint_every == 0 or step == total_steps:
                save_checkpoint()
            if step >= total_steps or bank_changed:
                break  # a changed bank: restart the loader (workers hold copies of the slots) mid-epoch
    progress.close()

    # Emotion space over the training split, then the model folder
    space = fit_emotion_space(inner.classifier, space_set, accelerator, cfg.space_batch_size, cfg.data.num_workers)
    accelerator.wait_for_everyone()
    summary = {"steps": step, "skipped_images": skipped, "num_processes": accelerator.num_processes,
               "emotion_space_counts": space.counts.tolist(), "num_train_items": len(train_data)}
    if bank is not None:
        summary["memory_bank"] = {"updates": bank.updates, "images": len(bank.items), "slots": bank.num_slots,
                                  "generated_share": bank.generated_share()}
    if cfg.feedback.manifest:
        summary["feedback"] = {"generated_images": len(train_data.generated),
                               "generated_slots": train_data.num_generated_slots,
                               "generated_share": train_data.generated_share()}
    if accelerator.is_main_process:
        write_model_folder(out_dir / "final", inner, attributes, correlation, space, pipe, cfg)
        log({"step": step, "final": summary})
    accelerator.end_training()
    return summary


if __name__ == "__main__":
    main()
