"""The training loop EmoSym's steps 1 and 2 share: data, accelerate, the schedule, validation top-1 and the
choice of the best model. Each step brings its model and its loss (``batch_loss``) and says how to write the
chosen model (``save_best``)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from uniemo.constants import LABEL_SPACES
from uniemo.data import build_dataset
from uniemo.data.base import collate_records
from uniemo.training.run import (MetricsLog, TrainingProgress, backward_and_step, dataset_options, finish_run,
                                 loader_options, restrict_training_set)
from uniemo.training.utils import cosine_with_warmup


def emosym_datasets(data):
    """(train, val, emotions): PIL images (the MLLM's processor does the rest), the training-set limits applied."""
    if not data.root:
        raise ValueError("data.root is not set: pass data.root=/path/to/dataset")
    emotions = LABEL_SPACES[data.dataset.lower()]
    on_error = "skip" if data.skip_unreadable else "raise"
    options = dataset_options(data)
    train_set = build_dataset(data.dataset, data.root, data.train_split, None, on_error, **options)
    val_set = build_dataset(data.dataset, data.root, data.val_split, None, on_error, **options)
    restrict_training_set(train_set, data)
    return train_set, val_set, emotions


@torch.no_grad()
def predict(model, loader, accelerator) -> tuple[torch.Tensor, torch.Tensor]:
    """Gathered logits and labels over ``loader`` (every process's share)."""
    model.eval()
    core = accelerator.unwrap_model(model)
    logits, labels = [], []
    for batch in loader:
        if batch is None:
            continue
        inputs = {k: v.to(accelerator.device) for k, v in core.encode(batch["pixel_values"]).items()}
        with accelerator.autocast():
            out = model(**inputs)
        logits.append(accelerator.gather_for_metrics(out.logits.float()))
        labels.append(accelerator.gather_for_metrics(batch["labels"].to(accelerator.device)))
    model.train()
    return torch.cat(logits).cpu(), torch.cat(labels).cpu()


def train_emosym(cfg, accelerator, model, train_set, val_set, title: str,
                 batch_loss: Callable[[object, dict, dict], tuple[torch.Tensor, dict]],
                 save_best: Callable[[object, float, int], None], param_groups: list[dict] | None = None) -> dict:
    """Train ``model``'s trainable parameters with AdamW (``cfg.lr``, or ``param_groups`` with their own
    learning rates; cosine schedule with warmup), evaluate top-1 on ``val_set`` every ``eval_every`` steps (each
    epoch by default) and call ``save_best(core, top1, step)`` on the main process whenever it improves.

    ``batch_loss(model, inputs, batch)`` -> (loss, {term: tensor}) for one micro-batch: ``inputs`` is the
    processor's batch on the device, ``batch`` the dataset's (labels, index, pixel_values as PIL images, ...).
    ``model`` must have an ``encode(images)`` method (``EmoSymModel``'s) and return an output with ``logits``.
    """
    out_dir, device = Path(cfg.out_dir), accelerator.device
    groups = param_groups or [{"params": [p for p in model.parameters() if p.requires_grad]}]
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    per_process = cfg.batch_size // accelerator.num_processes
    train_loader = DataLoader(train_set, batch_size=per_process, shuffle=True, drop_last=True,
                              collate_fn=collate_records, generator=torch.Generator().manual_seed(cfg.seed),
                              **loader_options(cfg.data.num_workers))
    val_loader = DataLoader(val_set, batch_size=cfg.eval_batch_size, collate_fn=collate_records,
                            **loader_options(cfg.data.num_workers))
    steps_per_epoch = len(train_loader) // (cfg.grad_accum_steps * accelerator.num_processes)
    if steps_per_epoch < 1:
        raise ValueError("fewer training batches than one optimizer step: lower batch_size or grad_accum_steps")
    total_steps = cfg.max_steps or cfg.epochs * steps_per_epoch
    scheduler = cosine_with_warmup(optimizer, int(cfg.warmup_ratio * total_steps), total_steps)
    model, optimizer, scheduler, train_loader, val_loader = accelerator.prepare(
        model, optimizer, scheduler, train_loader, val_loader)
    core = accelerator.unwrap_model(model)
    log = MetricsLog(accelerator, out_dir / "metrics.jsonl")
    eval_every = cfg.eval_every or steps_per_epoch
    best = {"top1": -1.0, "step": 0}

    def evaluate_and_select(step: int) -> None:
        logits, labels = predict(model, val_loader, accelerator)
        top1 = float((logits.argmax(1) == labels).float().mean())
        log({"step": step, "val/top1": top1})
        if top1 > best["top1"]:
            best.update(top1=top1, step=step)
            if accelerator.is_main_process:
                save_best(core, top1, step)

    step, epoch = 0, 0
    model.train()
    progress = TrainingProgress(accelerator, log, total_steps, 0, title, cfg.log_every)
    while step < total_steps:
        for batch in train_loader:
            if batch is None:
                continue
            progress.skipped += batch["num_skipped"]
            inputs = {k: v.to(device) for k, v in core.encode(batch["pixel_values"]).items()}
            with accelerator.accumulate(model):
                with accelerator.autocast():
                    loss, terms = batch_loss(model, inputs, batch)
                backward_and_step(accelerator, loss, optimizer, scheduler, cfg.grad_clip)
            if not accelerator.sync_gradients:
                continue
            step += 1
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"the loss is {loss.item()} at step {step}")
            progress.step_done(step, epoch, loss.item(), {k: float(v.detach()) if torch.is_tensor(v) else float(v)
                                                    for k, v in terms.items()},
                               scheduler.get_last_lr()[0])
            if step % eval_every == 0 or step == total_steps:
                evaluate_and_select(step)
            if step >= total_steps:
                break
        epoch += 1
    progress.close()
    accelerator.wait_for_everyone()
    final = {"best_val_top1": best["top1"], "best_step": best["step"], "steps": step,
             "skipped_images": progress.skipped, "num_processes": accelerator.num_processes}
    log({"step": step, "final": final})
    finish_run(accelerator, out_dir, f"{title}: {out_dir.name}")
    return final
