"""Stage 2 (paper III-B): joint training of understanding and emotion-conditioned generation, then the emotion
space and the model folder. ``run_joint`` is the loop, written out; its command line is ``train/joint.py``.

Per step (``uniemo.training.stage2.joint_step``): the classifier encodes the image (L_U), α is looked up at the
ground-truth emotion, the mappers fuse the embeds into c (Eq. 6), L_cond (Eq. 7), and c replaces the placeholder
token per sample for the frozen UNet's ε-prediction loss (Eq. 8). L = γ1·L_U + γ2·L_cond + γ3·L_diff. Explicit
feedback (``feedback.manifest``) mixes kept generated images into the training set; the online memory bank
(``memory_bank.enabled``) refreshes its generated images every ``memory_bank.every`` steps.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import DDPMScheduler
from torch.utils.data import DataLoader

from uniemo.constants import PLACEHOLDER_TOKEN
from uniemo.data import build_dataset, build_transform, collate_records
from uniemo.data.feedback import FeedbackDataset, MixedDataset
from uniemo.data.sampler import EpochSampler, SeededAugmentation
from uniemo.losses import weighted_sum
from uniemo.memory_bank import BankedDataset, MemoryBank
from uniemo.scoring import ImageScorer
from uniemo.training.bank_update import update_memory_bank
from uniemo.training.joint_config import JointConfig
from uniemo.training.run import (CheckpointSaver, MetricsLog, TrainingProgress, backward_and_step,
                                 dataset_options, finish_run, loader_options, restrict_training_set,
                                 sample_generators, start_run)
from uniemo.training.stage2 import (JointTransform, UnderstandingAndFusion, build_optimizer, joint_step,
                                    load_components, set_trainable)
from uniemo.training.stage2_outputs import (fit_emotion_space, log_validation, validation_conditions,
                                            write_model_folder)
from uniemo.training.utils import WEIGHT_DTYPES, cosine_with_warmup, freeze_gradless

BANK_STATE = "memory_bank.json"  # the bank's slots inside a checkpoint


def run_joint(cfg: JointConfig) -> dict:
    """Run stage 2 and fit the emotion space.

    Writes to ``cfg.out_dir``: ``config.yaml``, ``metrics.jsonl``, ``checkpoints/checkpoint-<step>/``
    (``resume=latest``), ``validation/step-<step>.png`` (a fixed-seed grid per emotion), ``memory_bank/`` (with
    the bank: the images of each update, their scores, ``state.json``) and ``final/`` (the UniEmo model folder).

    Returns:
        a summary (also the ``final`` record of ``metrics.jsonl``).
    """
    accelerator = start_run(cfg, cfg.out_dir, "uniemo-stage2")
    out_dir, device = Path(cfg.out_dir), accelerator.device
    weight_dtype = WEIGHT_DTYPES[accelerator.mixed_precision]  # the config's setting, else the launcher's

    # Models: load, freeze, unfreeze
    classifier, attributes, correlation, fusion, pipe, placeholder_id = load_components(cfg, device)
    pipe.set_progress_bar_config(disable=True)
    vae, unet, text_encoder = pipe.vae, pipe.unet, pipe.text_encoder
    vae.requires_grad_(False).eval()
    text_encoder.requires_grad_(False).eval()
    set_trainable(classifier, fusion, unet, cfg.model)
    if cfg.model.gradient_checkpointing:  # the UNet's and the ViT's activations are recomputed in backward
        unet.enable_gradient_checkpointing()
        classifier.set_grad_checkpointing(True)
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
    extra = dataset_options(cfg.data)
    train_set = build_dataset(cfg.data.dataset, cfg.data.root, cfg.data.train_split,
                              JointTransform(cfg.resolution, True), on_error, **extra)
    if tuple(train_set.labels) != tuple(classifier.config.emotions):
        raise ValueError(f"dataset labels {train_set.labels} differ from the model's {classifier.config.emotions}")
    restrict_training_set(train_set, cfg.data)
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
        generated = FeedbackDataset.from_manifest(cfg.feedback.manifest, train_set.labels,
                                                  JointTransform(cfg.resolution, True), on_error)
        train_data = MixedDataset(train_set, generated, cfg.feedback.proportion, cfg.seed)
        accelerator.print(f"training on {train_data}")
    if cfg.memory_bank.enabled:
        mb = cfg.memory_bank
        bank = MemoryBank(len(train_set), mb.proportion, mb.repeat)
        if mb.confidence_pool is not None and mb.confidence_pool < bank.capacity:
            raise ValueError(f"memory_bank.confidence_pool ({mb.confidence_pool}) is smaller than the bank's "
                             f"{bank.capacity} slots: score at least that many real samples")
        banked = train_data = BankedDataset(train_set, bank, JointTransform(cfg.resolution, True))
        # every process generates and scores its share of each update
        scorer = ImageScorer.from_probe_run(mb.probe or cfg.model.correlation, attributes.scenes, attributes.objects,
                                            device=device)
    train_aug = SeededAugmentation(train_data, cfg.seed)
    sampler = EpochSampler(len(train_data), cfg.batch_size, cfg.seed, accelerator.process_index,
                           accelerator.num_processes)
    per_process = cfg.batch_size // accelerator.num_processes

    def make_train_loader() -> DataLoader:
        # made again after each memory-bank update: persistent workers hold their own copy of the bank's slots
        return DataLoader(train_aug, batch_size=per_process, sampler=sampler,
                          collate_fn=collate_records, generator=torch.Generator().manual_seed(cfg.seed),
                          **loader_options(cfg.data.num_workers))

    train_loader = make_train_loader()

    # Optimiser and schedule
    steps_per_epoch = max(1, sampler.batches_per_epoch // cfg.grad_accum_steps)
    total_steps = cfg.max_steps if cfg.max_steps is not None else cfg.epochs * steps_per_epoch
    models = {"joint": joint, "vae": vae, "unet": unet, "text_encoder": text_encoder, "tokenizer": pipe.tokenizer,
              "noise_scheduler": noise_scheduler, "placeholder_id": placeholder_id, "attributes": attributes,
              "weight_dtype": weight_dtype, "prompt": PLACEHOLDER_TOKEN}
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
    checkpoints = CheckpointSaver(accelerator, out_dir / "checkpoints", cfg.checkpoints_total_limit)
    if cfg.resume:
        resume_dir, state = checkpoints.resume(cfg.resume)
        step = state["step"]
        if bank is not None and (resume_dir / BANK_STATE).is_file():
            bank.load_state_dict(json.loads((resume_dir / BANK_STATE).read_text()))
            banked.refresh()
    log = MetricsLog(accelerator, out_dir / "metrics.jsonl")

    def save_checkpoint() -> None:
        # the bank's images stay in out_dir/memory_bank/; its slots travel with the checkpoint
        checkpoints.save(step, {}, {BANK_STATE: bank.state_dict()} if bank is not None else None)

    def refresh_bank() -> None:
        # collective: every process generates, scores and ends with the same bank
        record = update_memory_bank(bank, joint, pipe, placeholder_id, attributes, correlation, scorer, space_set,
                                    cfg, step, device, out_dir / "memory_bank", accelerator.is_main_process)
        log({"step": step, "memory_bank": record})
        banked.refresh()

    def validate() -> None:
        if accelerator.is_main_process:
            conditions = validation_conditions(inner, val_set, attributes, device)
            log_validation(pipe, conditions, arch.emotions, placeholder_id, cfg,
                           out_dir / "validation" / f"step-{step:06d}.png")
        accelerator.wait_for_everyone()

    # Train
    joint.train()
    progress = TrainingProgress(accelerator, log, total_steps, step, "stage 2", cfg.log_every)
    while step < total_steps:
        micro = step * cfg.grad_accum_steps  # micro-batches done
        epoch, start_batch = divmod(micro, sampler.batches_per_epoch)
        sampler.set_epoch(epoch, start_batch)
        train_aug.epoch = epoch
        for batch in train_loader:
            micro += 1
            if batch is None:
                continue
            progress.skipped += batch["num_skipped"]
            batch["pixel_values"] = batch["pixel_values"].to(device)
            # each image's own generator (object pick, latent sample, noise, timestep, prompt): the same draws
            # whatever the number of processes, and again after a resume
            first = (micro - 1) * cfg.batch_size + accelerator.process_index * per_process
            generator = sample_generators(cfg.seed, first, len(batch["labels"]))
            with accelerator.accumulate(joint):
                with accelerator.autocast():
                    terms = joint_step(models, batch, cfg, generator)
                    loss, logged = weighted_sum(weights, terms)
                backward_and_step(accelerator, loss, optimizer, scheduler, cfg.optim.grad_clip)
            if not accelerator.sync_gradients:
                continue
            step += 1
            progress.step_done(step, epoch, loss.item(), {k: v.item() for k, v in logged.items()},
                               scheduler.get_last_lr()[0])
            if cfg.validation_every and step % cfg.validation_every == 0:
                validate()
            # The bank changes before the checkpoint of this step, so that a resumed run starts from its new state
            bank_changed = bank is not None and step % cfg.memory_bank.every == 0 and step < total_steps
            if bank_changed:
                refresh_bank()
                train_loader = make_train_loader()
            if step % cfg.checkpoint_every == 0 or step == total_steps:
                save_checkpoint()
            if step >= total_steps or bank_changed:
                break  # a changed bank: restart the loader (workers hold copies of the slots) mid-epoch
    progress.close()

    # Emotion space over the training split, then the model folder
    space = fit_emotion_space(inner.classifier, space_set, accelerator, cfg.space_batch_size, cfg.data.num_workers,
                              cfg.emotion_space_components)
    accelerator.wait_for_everyone()
    summary = {"steps": step, "skipped_images": progress.skipped, "num_processes": accelerator.num_processes,
               "mixed_precision": accelerator.mixed_precision,
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
    finish_run(accelerator, out_dir, "stage 2: " + out_dir.name)
    return summary

