"""Stage 1: train the expert-query emotion classifier (paper III-A, docs/method.md section 3).

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

import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from uniemo.config import parse_config, save_config
from uniemo.training.checks import check_stage1_inputs, clip_identity
from uniemo.training.data_config import DataConfig

logger = logging.getLogger("uniemo.train.understanding")
PRESETS = {p.stem.replace("understanding_", ""): p
           for p in (Path(__file__).parent / "configs").glob("understanding_*.yaml")}


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
    released_masking: bool = False  # official: missing attributes' dummy texts and duplicates stay negatives


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
    mixed_precision: str | None = None  # no | fp16 | bf16; null: the launcher's (accelerate launch --mixed_precision)
    resume: str | None = None  # a checkpoint folder, or "latest"
    eval_batch_size: int = 64

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


# ----------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict:
    """Run stage 1. Returns the final metrics (also written to metrics.jsonl)."""
    cfg = parse_config(Config, argv, presets=PRESETS, description=__doc__, checks=[check_stage1_inputs])

    # Heavy imports only now, so that --help and a bad config answer at once.
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    from uniemo.attributes import AttributeTargets
    from uniemo.clip import AttributeTextEncoder
    from uniemo.constants import LABEL_SPACES
    from uniemo.data import build_dataset, build_transform, collate_records
    from uniemo.data.sampler import EpochSampler, SeededAugmentation
    from torch.utils.data import DataLoader

    from uniemo.losses import weighted_sum
    from uniemo.metrics import classification_report
    from uniemo.training.stage1 import (build_classifier, build_optimizer, predict, understanding_losses,
                                        write_model_folder)
    from uniemo.training.utils import cosine_with_warmup, cpu_processes, freeze_gradless, latest_checkpoint, \
        mixed_precision_setting

    accelerator = Accelerator(cpu=cpu_processes(), mixed_precision=mixed_precision_setting(cfg.mixed_precision),
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
        resume_dir = latest_checkpoint(ckpt_dir) if cfg.resume == "latest" else Path(cfg.resume)
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
             "skipped_images": skipped, "num_processes": accelerator.num_processes,
             "mixed_precision": accelerator.mixed_precision}
    if accelerator.is_main_process:
        best_dir = out_dir / "best" / "classifier"
        from uniemo.classifier import EmoClassifier

        chosen = EmoClassifier.from_pretrained(best_dir) if best_dir.is_dir() else accelerator.unwrap_model(model)
        write_model_folder(out_dir / "final", chosen,
                           {"clip": cfg.model.clip, "clip_identity": clip_identity(cfg.model.clip, cfg.model.preset),
                            "dataset": cfg.data.dataset, **extra, **final},
                           targets)
        log({"step": step, "final": final})
    accelerator.end_training()
    return final


if __name__ == "__main__":
    main()
