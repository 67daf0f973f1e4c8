"""Stage 1: train the expert-query emotion classifier (paper III-A, METHOD.md section 3).

L_U = λ1·L_S + λ2·L_O + λ3·L_Cls: scene / object contrastive losses against the frozen CLIP text tower's
attribute embeddings (computed once, cached) plus cross-entropy on the emotion head. AdamW with its own
learning rate per parameter group, cosine schedule with warmup, model selection on the val split.

Launch:
    python train/understanding.py --preset tiny                       # CPU smoke run (random tiny CLIP)
    python train/understanding.py --preset emoset-vit-b-32 data.root=/data/EmoSet-118K
    accelerate launch --num_processes 4 --mixed_precision bf16 train/understanding.py --preset emoset-vit-l-14 \
        data.root=/data/EmoSet-118K
    torchrun --nproc_per_node 2 train/understanding.py --preset tiny ...   # several CPU processes (gloo)

Writes to ``out_dir``: ``config.yaml`` (resolved config), ``metrics.jsonl``, ``checkpoints/checkpoint-<step>/``
(resumable: ``resume=latest``), ``final/classifier/`` (the best-on-val model), ``final/attributes.json``
+ ``attributes.safetensors`` (the attribute base: names and
their frozen CLIP text embeddings) and ``final/uniemo.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import dataclasses  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from uniemo.config import parse_config, save_config  # noqa: E402

logger = logging.getLogger("uniemo.train.understanding")
PRESETS = {p.stem.replace("understanding_", ""): p
           for p in (Path(__file__).parent / "configs").glob("understanding_*.yaml")}
FORMAT_VERSION = 1


@dataclass
class DataConfig:
    dataset: str = "emoset"  # emoset | emoshapes | fi | emotionroi | twitter1 | twitter2 | folder
    root: str = ""  # dataset folder
    train_split: str = "train"
    val_split: str | None = "val"  # model selection in stages 1-2 (never test); train/probe.py: null skips it
    fold: int = 0  # twitter1/2: which of the 5 folds is held out
    num_classes: int = 8  # emoset/emoshapes: 8, or 2 for the sentiment collapse
    skip_unreadable: bool = False  # false: fail on the first unreadable image (with its path); true: skip, count
    num_workers: int = 4
    max_train_samples: int | None = None  # debug: a prefix of the training split


@dataclass
class ModelConfig:
    preset: str = "vit-b-32"  # tiny | vit-b-32 | vit-b-16 | vit-l-14 (geometry when clip is null)
    variant: str = "paper"  # paper | official
    clip: str | None = "openai/clip-vit-base-patch32"  # Hub id or local folder; null = random tiny CLIP
    init_classifier: str | None = None  # continue from a saved classifier folder instead of CLIP
    overrides: dict[str, Any] = field(default_factory=dict)  # EmoClassifierConfig fields, e.g. {num_scene_queries: 8}
    freeze_backbone: bool = False


@dataclass
class LossConfig:
    scene: float = 0.25  # λ1 (official 0.05)
    object: float = 0.25  # λ2 (official 0.05)
    emotion: float = 0.5  # λ3 (official 0.9)
    temperature: float = 0.07  # τ of Eq. 4
    symmetric: bool = False  # official: symmetric CLIP loss


@dataclass
class OptimConfig:
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
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
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
    mixed_precision: str = "no"  # no | fp16 | bf16
    resume: str | None = None  # a checkpoint folder, or "latest"
    eval_batch_size: int = 64

    def validate(self) -> None:
        if not self.data.val_split:
            raise ValueError("data.val_split is required: stage 1 selects its model on it (EmotionROI / Twitter: test)")
        if self.batch_size < 1 or self.grad_accum_steps < 1:
            raise ValueError("batch_size and grad_accum_steps must be >= 1")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ValueError(f"mixed_precision must be no, fp16 or bf16, got {self.mixed_precision!r}")
        if self.model.variant not in ("paper", "official"):
            raise ValueError(f"model.variant must be paper or official, got {self.model.variant!r}")


# ----------------------------------------------------------------------------------------------------------
# helpers used by this script (and by train/joint.py for the shared setup)


def build_classifier(cfg: ModelConfig, emotions: tuple[str, ...]):
    """The classifier and the frozen CLIP (for the text tower), following ``cfg``.

    Returns:
        (classifier, clip_model, clip_tokenizer)
    """
    from uniemo.classifier import EmoClassifier, EmoClassifierConfig
    from uniemo.clip import build_tiny_clip, classifier_config_from_clip, init_from_clip, load_clip

    overrides = dict(cfg.overrides)
    if cfg.variant == "official":
        overrides = {**dict(interactive_layers=1, interactive_kv="cls_patch", use_beta=False,
                            learnable_proj=False), **overrides}
    overrides.setdefault("variant", cfg.variant)
    overrides.setdefault("emotions", tuple(emotions))
    try:
        if cfg.clip is None:
            arch = EmoClassifierConfig.from_preset(cfg.preset, **overrides)
            clip_model, tokenizer = build_tiny_clip(
                image_size=arch.image_size, patch_size=arch.patch_size, width=arch.width, layers=arch.layers,
                heads=arch.heads, proj_dim=arch.proj_dim,
            )
            clip_model.eval().requires_grad_(False)
        else:
            clip_model, tokenizer = load_clip(cfg.clip)
            overrides.setdefault("preset", cfg.preset)
            overrides.setdefault("proj_dim", clip_model.config.projection_dim)
            arch = classifier_config_from_clip(clip_model.config.vision_config, **overrides)
    except TypeError as e:  # an unknown override key
        valid = ", ".join(f.name for f in dataclasses.fields(EmoClassifierConfig))
        raise ValueError(f"bad model.overrides ({e}); valid keys: {valid}") from None
    if cfg.init_classifier:
        classifier = EmoClassifier.from_pretrained(cfg.init_classifier)
    else:
        classifier = EmoClassifier(arch)
        if cfg.clip is not None:
            init_from_clip(classifier, clip_model.vision_model)
    if cfg.freeze_backbone:
        for _, p in classifier.parameter_groups()["backbone"]:
            p.requires_grad_(False)
    return classifier, clip_model, tokenizer


def cpu_processes() -> bool:
    """True when this is one of several processes (``torchrun``, ``accelerate launch``) on a machine without CUDA.

    accelerate forms a gloo process group on the CPU only when told ``cpu=True`` (``accelerate launch --cpu``
    says so through ``ACCELERATE_USE_CPU``; ``torchrun`` does not). Without it every process would train the
    whole run alone and all of them would write the same run folder.
    """
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()


def freeze_gradless(modules: dict, loss_fn) -> list[str]:
    """Freeze the trainable parameters that one evaluation of ``loss_fn()`` leaves without a gradient.

    Used before DDP wraps the model (several processes only): DDP runs here with ``find_unused_parameters``
    off, because the expert projections are applied outside the wrapped ``forward``, which its search for
    unused parameters does not allow; so every trainable parameter must get a gradient at every step. A loss
    weighted 0 can leave whole branches without one (L_S alone never reaches the object queries or the
    head). Such parameters would never change anyway, so freezing them changes nothing. The probe restores
    the CPU random state and discards its gradients.

    Args:
        modules: name -> module whose parameters are checked.
        loss_fn: zero-argument callable returning the training loss of one batch.
    Returns:
        the frozen parameters, as "module.parameter" names.
    """
    with torch.random.fork_rng(devices=[]):
        loss_fn().backward()
    frozen = []
    for prefix, module in modules.items():
        for name, p in module.named_parameters():
            if p.requires_grad and p.grad is None:
                p.requires_grad_(False)
                frozen.append(f"{prefix}.{name}")
        module.zero_grad(set_to_none=True)
    return frozen


def build_optimizer(classifier, optim: OptimConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters, one group per (module group, decay / no decay)."""
    lrs = {"backbone": optim.lr_backbone, "queries": optim.lr_queries,
           "projections": optim.lr_projections, "head": optim.lr_head}
    groups = []
    for group, named in classifier.parameter_groups().items():
        decay = [p for n, p in named if p.requires_grad and p.ndim >= 2]
        no_decay = [p for n, p in named if p.requires_grad and p.ndim < 2]
        for params, wd in ((decay, optim.weight_decay), (no_decay, 0.0)):
            if params:
                groups.append({"params": params, "lr": lrs[group], "weight_decay": wd, "name": group})
    return torch.optim.AdamW(groups, betas=tuple(optim.betas))


def cosine_with_warmup(optimizer, warmup_steps: int, total_steps: int, min_ratio: float = 0.0):
    """Linear warmup then a single cosine decay over the whole run (not the official 64-step cycle)."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def understanding_losses(model, batch, targets, loss_cfg: LossConfig, generator, device):
    """The stage-1 loss terms as zero-argument callables (so weight-0 terms are never computed)."""
    from uniemo.losses import emotion_ce_loss, expert_contrastive_loss

    out = model(batch["pixel_values"].to(device))
    labels = batch["labels"].to(device)
    scene_ids, object_ids, scene_text, object_text = targets.batch(
        batch["scene"], batch["objects"], generator, device)
    unwrapped = getattr(model, "module", model)
    projected: dict = {}

    def project():
        if not projected:
            projected["s"], projected["o"] = unwrapped.project_queries(out)
        return projected["s"], projected["o"]

    terms = {
        "emotion": lambda: emotion_ce_loss(out.logits, labels),
        "scene": lambda: expert_contrastive_loss(project()[0], scene_text.to(out.logits.dtype), scene_ids,
                                                 loss_cfg.temperature, loss_cfg.symmetric),
        "object": lambda: expert_contrastive_loss(project()[1], object_text.to(out.logits.dtype), object_ids,
                                                  loss_cfg.temperature, loss_cfg.symmetric),
    }
    return out, terms


@torch.no_grad()
def predict(model, loader, accelerator) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels over a (prepared) loader, gathered across processes."""
    model.eval()
    all_logits, all_labels = [], []
    for batch in loader:
        if batch is None:
            continue
        with accelerator.autocast():
            logits = model(batch["pixel_values"]).logits.float()
        logits, labels = accelerator.gather_for_metrics((logits, batch["labels"]))
        all_logits.append(logits.cpu())
        all_labels.append(labels.cpu())
    model.train()
    if not all_logits:
        return torch.zeros(0, 0), torch.zeros(0, dtype=torch.long)
    return torch.cat(all_logits), torch.cat(all_labels)


def write_model_folder(out: Path, classifier, extra: dict, attributes) -> None:
    out.mkdir(parents=True, exist_ok=True)
    classifier.save_pretrained(out / "classifier")
    attributes.save(out)
    (out / "uniemo.json").write_text(json.dumps({
        "format_version": FORMAT_VERSION, "stage": "understanding",
        "emotions": list(classifier.config.emotions), "components": ["classifier"], **extra,
    }, indent=2) + "\n")


def _latest_checkpoint(ckpt_dir: Path) -> Path | None:
    found = sorted(ckpt_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    return found[-1] if found else None


# ----------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict:
    """Run stage 1. Returns the final metrics (also written to metrics.jsonl)."""
    cfg = parse_config(Config, argv, presets=PRESETS, description=__doc__)

    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    from eval.metrics import classification_report
    from uniemo.attributes import AttributeTargets
    from uniemo.clip import AttributeTextEncoder
    from uniemo.constants import LABEL_SPACES
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

    # Data
    if not cfg.data.root:
        raise ValueError("data.root is not set: pass data.root=/path/to/dataset")
    emotions = LABEL_SPACES.get(cfg.data.dataset.lower())
    if cfg.data.num_classes == 2 and cfg.data.dataset.lower() in ("emoset", "emoshapes"):
        emotions = ("negative", "positive")
    extra = {"fold": cfg.data.fold} if cfg.data.dataset.startswith("twitter") else {}
    if cfg.data.dataset.lower() in ("emoset", "emoshapes"):
        extra["num_classes"] = cfg.data.num_classes
    on_error = "skip" if cfg.data.skip_unreadable else "raise"

    # Models: classifier (trained) and the frozen CLIP text tower (attribute targets)
    classifier, clip_model, clip_tokenizer = build_classifier(cfg.model, emotions or ("negative", "positive"))
    arch = classifier.config
    train_set = build_dataset(cfg.data.dataset, cfg.data.root, cfg.data.train_split,
                              build_transform(arch.image_size, True, arch.image_mean, arch.image_std),
                              on_error, **extra)
    val_set = build_dataset(cfg.data.dataset, cfg.data.root, cfg.data.val_split,
                            build_transform(arch.image_size, False, arch.image_mean, arch.image_std),
                            on_error, **extra)
    if tuple(train_set.labels) != tuple(arch.emotions):
        raise ValueError(f"dataset labels {train_set.labels} differ from the model's {arch.emotions}")
    if cfg.data.max_train_samples:
        train_set.entries = train_set.entries[:cfg.data.max_train_samples]
    scenes, objects = train_set.attribute_vocab()
    targets = AttributeTargets.from_text_encoder(scenes, objects, AttributeTextEncoder(clip_model, clip_tokenizer))
    del clip_model  # the text embeddings are cached; the text tower is no longer needed
    if not arch.use_queries:
        cfg.loss.scene = cfg.loss.object = 0.0  # no expert queries, nothing to supervise

    train_aug = SeededAugmentation(train_set, cfg.seed)
    sampler = EpochSampler(len(train_set), cfg.batch_size, cfg.seed, accelerator.process_index,
                           accelerator.num_processes)
    per_process = cfg.batch_size // accelerator.num_processes
    train_loader = DataLoader(train_aug, batch_size=per_process, sampler=sampler, num_workers=cfg.data.num_workers,
                              collate_fn=collate_records, generator=torch.Generator().manual_seed(cfg.seed))
    val_loader = DataLoader(val_set, batch_size=cfg.eval_batch_size, shuffle=False,
                            num_workers=cfg.data.num_workers, collate_fn=collate_records)

    # Optimiser and schedule
    steps_per_epoch = sampler.batches_per_epoch // cfg.grad_accum_steps
    if steps_per_epoch < 1:
        raise ValueError("fewer training batches than grad_accum_steps: lower batch_size or grad_accum_steps")
    total_steps = cfg.max_steps or cfg.epochs * steps_per_epoch
    weights = {"scene": cfg.loss.scene, "object": cfg.loss.object, "emotion": cfg.loss.emotion}
    if accelerator.num_processes > 1:
        first = next(b for b in train_loader if b is not None)

        def first_loss():
            with accelerator.autocast():
                _, terms = understanding_losses(classifier.to(device), first, targets, cfg.loss,
                                                torch.Generator().manual_seed(cfg.seed), device)
                return weighted_sum(weights, terms)[0]

        frozen = freeze_gradless({"classifier": classifier}, first_loss)
        if frozen:
            accelerator.print(f"frozen, no weighted loss reaches them: {', '.join(frozen)}")
    optimizer = build_optimizer(classifier, cfg.optim)
    scheduler = cosine_with_warmup(optimizer, int(cfg.optim.warmup_ratio * total_steps), total_steps,
                                   cfg.optim.min_lr_ratio)
    model, optimizer, scheduler, val_loader = accelerator.prepare(classifier, optimizer, scheduler, val_loader)
    eval_every = cfg.eval_every or steps_per_epoch
    checkpoint_every = cfg.checkpoint_every or steps_per_epoch

    # Resume
    step, best = 0, {"top1": -1.0, "step": 0}
    ckpt_dir = out_dir / "checkpoints"
    if cfg.resume:
        resume_dir = _latest_checkpoint(ckpt_dir) if cfg.resume == "latest" else Path(cfg.resume)
        if resume_dir is None or not resume_dir.is_dir():
            raise FileNotFoundError(f"no checkpoint to resume from at {cfg.resume!r} (looked in {ckpt_dir})")
        accelerator.load_state(str(resume_dir))
        state = json.loads((resume_dir / "trainer_state.json").read_text())
        step, best = state["step"], state["best"]
        accelerator.print(f"resumed from {resume_dir} at step {step}")

    metrics_file = out_dir / "metrics.jsonl"

    def log(record: dict) -> None:
        if accelerator.is_main_process:
            with metrics_file.open("a") as f:
                f.write(json.dumps(record) + "\n")

    def evaluate_and_select() -> dict:
        logits, labels = predict(model, val_loader, accelerator)
        report = classification_report(logits, labels, arch.emotions)
        record = {"step": step, "val/top1": report["top1"], "val/top5": report["top5"],
                  "val/mean_class_accuracy": report["mean_class_accuracy"]}
        log(record)
        if report["top1"] > best["top1"]:
            best.update(top1=report["top1"], step=step)
            if accelerator.is_main_process:
                accelerator.unwrap_model(model).save_pretrained(out_dir / "best" / "classifier")
        return record

    def save_checkpoint() -> None:
        accelerator.wait_for_everyone()
        path = ckpt_dir / f"checkpoint-{step}"
        accelerator.save_state(str(path))
        if accelerator.is_main_process:
            (path / "trainer_state.json").write_text(json.dumps({"step": step, "best": best}))
            old = sorted(ckpt_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
            for stale in old[:-cfg.checkpoints_total_limit]:
                shutil.rmtree(stale, ignore_errors=True)

    # Train
    model.train()
    progress = tqdm(total=total_steps, initial=step, desc="stage 1", disable=not accelerator.is_local_main_process)
    skipped, t0, running = 0, time.time(), {}
    while step < total_steps:
        micro = step * cfg.grad_accum_steps
        epoch, start_batch = divmod(micro, sampler.batches_per_epoch)
        sampler.set_epoch(epoch, start_batch)
        train_aug.epoch = epoch
        for batch in train_loader:
            if batch is None:  # every image of this batch was unreadable (skip mode)
                continue
            skipped += batch["num_skipped"]
            # one object per image per step, from an RNG tied to the step (reproducible across resumes)
            generator = torch.Generator().manual_seed(cfg.seed * 7919 + step * 31 + accelerator.process_index)
            with accelerator.accumulate(model):
                with accelerator.autocast():
                    _, terms = understanding_losses(model, batch, targets, cfg.loss, generator, device)
                    loss, logged = weighted_sum(weights, terms)
                accelerator.backward(loss)
                if accelerator.sync_gradients and cfg.optim.grad_clip > 0:
                    accelerator.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
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
                     **{f"train/loss_{k}": v / n for k, v in running.items()},
                     "skipped_images": skipped, "seconds": round(time.time() - t0, 2)})
                running = {}
            if step % eval_every == 0 or step == total_steps:
                evaluate_and_select()
            if step % checkpoint_every == 0 or step == total_steps:
                save_checkpoint()
            if step >= total_steps:
                break
    progress.close()

    # Final model folder: the best-on-val classifier, the attribute vocabulary, a descriptor
    accelerator.wait_for_everyone()
    final = {"best_val_top1": best["top1"], "best_step": best["step"], "steps": step,
             "skipped_images": skipped, "num_processes": accelerator.num_processes}
    if accelerator.is_main_process:
        best_dir = out_dir / "best" / "classifier"
        from uniemo.classifier import EmoClassifier

        chosen = EmoClassifier.from_pretrained(best_dir) if best_dir.is_dir() else accelerator.unwrap_model(model)
        write_model_folder(out_dir / "final", chosen,
                           {"clip": cfg.model.clip, "dataset": cfg.data.dataset, **extra, **final},
                           targets)
        log({"step": step, "final": final})
    accelerator.end_training()
    return final


if __name__ == "__main__":
    main()
