"""Stage 1 (understanding, paper III-A): the classifier from CLIP, its optimiser, its losses, prediction, the
stage-1 model folder, and the training loop ``run_stage1`` (the command line is ``train/understanding.py``).

L_U = λ1·L_S + λ2·L_O + λ3·L_Cls: scene / object contrastive losses against the frozen CLIP text tower's
attribute embeddings (computed once, cached) plus cross-entropy on the emotion head. AdamW with its own
learning rate per parameter group, cosine schedule with warmup, model selection on the val split.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from uniemo.attributes import AttributeTargets
from uniemo.classifier import EmoClassifier, EmoClassifierConfig
from uniemo.clip import (AttributeTextEncoder, build_tiny_clip, classifier_config_from_clip, init_from_clip,
                         load_clip)
from uniemo.constants import LABEL_SPACES
from uniemo.data import build_dataset, build_transform, collate_records
from uniemo.data.sampler import EpochSampler, SeededAugmentation
from uniemo.losses import emotion_ce_loss, expert_contrastive_loss, weighted_sum
from uniemo.metrics import classification_report
from uniemo.model_folder import write_manifest
from uniemo.training.checks import clip_identity
from uniemo.training.run import (CheckpointSaver, MetricsLog, TrainingProgress, backward_and_step,
                                 dataset_options, finish_run, loader_options, restrict_training_set,
                                 sample_generators, start_run)
from uniemo.training.stage1_config import UnderstandingConfig
from uniemo.training.utils import cosine_with_warmup, freeze_gradless


def build_classifier(cfg, emotions: tuple[str, ...]):
    """The classifier and the frozen CLIP (for the text tower), following ``cfg``.

    Returns:
        (classifier, clip_model, clip_tokenizer)
    """
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


def build_optimizer(classifier, optim) -> torch.optim.AdamW:
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


def understanding_losses(model, batch, targets, loss_cfg, generator, device):
    """The stage-1 loss terms as zero-argument callables (so weight-0 terms are never computed)."""
    out = model(batch["pixel_values"].to(device))
    labels = batch["labels"].to(device)
    scene_ids, object_ids, scene_text, object_text = targets.batch(
        batch["scene"], batch["objects"], generator, device, dummy=loss_cfg.released_masking)
    unwrapped = getattr(model, "module", model)
    projected: dict = {}

    def project():
        if not projected:
            projected["s"], projected["o"] = unwrapped.project_queries(out)
        return projected["s"], projected["o"]

    terms = {
        "emotion": lambda: emotion_ce_loss(out.logits, labels),
        "scene": lambda: expert_contrastive_loss(project()[0], scene_text.to(out.logits.dtype), scene_ids,
                                                 loss_cfg.temperature, loss_cfg.symmetric,
                                                 released_masking=loss_cfg.released_masking),
        "object": lambda: expert_contrastive_loss(project()[1], object_text.to(out.logits.dtype), object_ids,
                                                  loss_cfg.temperature, loss_cfg.symmetric,
                                                  released_masking=loss_cfg.released_masking),
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
    """The stage-1 model folder: ``classifier/``, the attribute base, ``uniemo.json`` and the model card
    (``uniemo.model_folder.write_manifest``)."""
    out.mkdir(parents=True, exist_ok=True)
    classifier.save_pretrained(out / "classifier")
    attributes.save(out)
    write_manifest(out, {"stage": "understanding", "emotions": list(classifier.config.emotions),
                         "components": ["classifier"], **extra})


# ----------------------------------------------------------------------------------------------------------


def run_stage1(cfg: UnderstandingConfig) -> dict:
    """Train the classifier of ``cfg`` and write its run folder.

    Writes to ``cfg.out_dir``: ``config.yaml``, ``metrics.jsonl``, ``checkpoints/checkpoint-<step>/``
    (resumable: ``resume=latest``), ``best/classifier/`` and ``final/`` (the stage-1 model folder: the
    best-on-val classifier, the attribute base, ``uniemo.json`` and a model card).

    Returns:
        the final metrics (also the ``final`` record of ``metrics.jsonl``).
    """
    accelerator = start_run(cfg, cfg.out_dir, "uniemo-stage1")
    out_dir, device = Path(cfg.out_dir), accelerator.device

    # Data
    if not cfg.data.root:
        raise ValueError("data.root is not set: pass data.root=/path/to/dataset")
    emotions = LABEL_SPACES.get(cfg.data.dataset.lower())
    if cfg.data.num_classes == 2 and cfg.data.dataset.lower() in ("emoset", "emoshapes"):
        emotions = ("negative", "positive")
    extra = dataset_options(cfg.data)
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
    restrict_training_set(train_set, cfg.data)
    scenes, objects = train_set.attribute_vocab()
    targets = AttributeTargets.from_text_encoder(scenes, objects, AttributeTextEncoder(clip_model, clip_tokenizer))
    del clip_model  # the text embeddings are cached; the text tower is no longer needed
    loss_cfg = cfg.loss
    if not arch.use_queries:  # no expert queries, nothing to supervise
        loss_cfg = dataclasses.replace(cfg.loss, scene=0.0, object=0.0)

    train_aug = SeededAugmentation(train_set, cfg.seed)
    sampler = EpochSampler(len(train_set), cfg.batch_size, cfg.seed, accelerator.process_index,
                           accelerator.num_processes)
    per_process = cfg.batch_size // accelerator.num_processes
    train_loader = DataLoader(train_aug, batch_size=per_process, sampler=sampler, collate_fn=collate_records,
                              generator=torch.Generator().manual_seed(cfg.seed), **loader_options(cfg.data.num_workers))
    val_loader = DataLoader(val_set, batch_size=cfg.eval_batch_size, shuffle=False, collate_fn=collate_records,
                            **loader_options(cfg.data.num_workers))

    # Optimiser and schedule
    steps_per_epoch = sampler.batches_per_epoch // cfg.grad_accum_steps
    if steps_per_epoch < 1:
        raise ValueError("fewer training batches than grad_accum_steps: lower batch_size or grad_accum_steps")
    total_steps = cfg.max_steps or cfg.epochs * steps_per_epoch
    weights = {"scene": loss_cfg.scene, "object": loss_cfg.object, "emotion": loss_cfg.emotion}
    if accelerator.num_processes > 1:
        first = next(b for b in train_loader if b is not None)

        def first_loss():
            with accelerator.autocast():
                _, terms = understanding_losses(classifier.to(device), first, targets, loss_cfg,
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
    checkpoints = CheckpointSaver(accelerator, out_dir / "checkpoints", cfg.checkpoints_total_limit)
    if cfg.resume:
        _, state = checkpoints.resume(cfg.resume)
        step, best = state["step"], state["best"]
    log = MetricsLog(accelerator, out_dir / "metrics.jsonl")

    def evaluate_and_select() -> None:
        logits, labels = predict(model, val_loader, accelerator)
        report = classification_report(logits, labels, arch.emotions)
        log({"step": step, "val/top1": report["top1"], "val/top5": report["top5"],
             "val/mean_class_accuracy": report["mean_class_accuracy"]})
        if report["top1"] > best["top1"]:
            best.update(top1=report["top1"], step=step)
            if accelerator.is_main_process:
                accelerator.unwrap_model(model).save_pretrained(out_dir / "best" / "classifier")

    # Train
    model.train()
    progress = TrainingProgress(accelerator, log, total_steps, step, "stage 1", cfg.log_every)
    while step < total_steps:
        micro = step * cfg.grad_accum_steps  # micro-batches done
        epoch, start_batch = divmod(micro, sampler.batches_per_epoch)
        sampler.set_epoch(epoch, start_batch)
        train_aug.epoch = epoch
        for batch in train_loader:
            micro += 1
            if batch is None:  # every image of this batch was unreadable (skip mode)
                continue
            progress.skipped += batch["num_skipped"]
            # one object per image per step, from the image's own generator (reproducible across resumes and
            # process counts)
            first = (micro - 1) * cfg.batch_size + accelerator.process_index * per_process
            generator = sample_generators(cfg.seed, first, len(batch["labels"]))
            with accelerator.accumulate(model):
                with accelerator.autocast():
                    _, terms = understanding_losses(model, batch, targets, loss_cfg, generator, device)
                    loss, logged = weighted_sum(weights, terms)
                backward_and_step(accelerator, loss, optimizer, scheduler, cfg.optim.grad_clip)
            if not accelerator.sync_gradients:
                continue
            step += 1
            progress.step_done(step, epoch, loss.item(), {k: v.item() for k, v in logged.items()},
                               scheduler.get_last_lr()[0])
            if step % eval_every == 0 or step == total_steps:
                evaluate_and_select()
            if step % checkpoint_every == 0 or step == total_steps:
                checkpoints.save(step, {"best": best})
            if step >= total_steps:
                break
    progress.close()

    # Final model folder: the best-on-val classifier, the attribute vocabulary, a descriptor
    accelerator.wait_for_everyone()
    final = {"best_val_top1": best["top1"], "best_step": best["step"], "steps": step,
             "skipped_images": progress.skipped, "num_processes": accelerator.num_processes,
             "mixed_precision": accelerator.mixed_precision}
    if accelerator.is_main_process:
        best_dir = out_dir / "best" / "classifier"
        chosen = EmoClassifier.from_pretrained(best_dir) if best_dir.is_dir() else accelerator.unwrap_model(model)
        write_model_folder(out_dir / "final", chosen,
                           {"clip": cfg.model.clip, "clip_identity": clip_identity(cfg.model.clip, cfg.model.preset),
                            "dataset": cfg.data.dataset, **extra, **final},
                           targets)
        log({"step": step, "final": final})
    finish_run(accelerator, out_dir, "stage 1: " + out_dir.name)
    return final
