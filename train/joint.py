"""Stage 2: joint training of understanding and emotion-conditioned generation (paper III-B, docs/method.md sections 5-6).

Per step (``joint_step``): the classifier encodes the image (L_U: emotion CE + scene/object contrastive);
α_Scene and α_Object are looked up at the ground-truth emotion for the attributes nearest to the pooled
queries; the mappers fuse cls/scene/object embeds into the condition c (Eq. 6); the condition head gives
L_cond (Eq. 7); c replaces the placeholder token's embedding per sample (``encode_condition``) and the frozen
UNet's ε-prediction MSE on the VAE latents gives L_diff (Eq. 8). L = γ1·L_U + γ2·L_cond + γ3·L_diff.

Trained by default: queries, Interactive Blocks, mappers, condition head, contrastive projections. Frozen with
``requires_grad_(False)`` (no gradient memory): UNet, VAE, diffusion text encoder, CLIP backbone, emotion head.
Each group is a switch (``model.train_*``). At the end the emotion space is fitted on the training split
(evaluation transform, gathered over processes) and the model folder of docs/model-folder.md is written.

Launch:
    python train/joint.py --preset tiny model.stage1=RUN1/final model.diffusion=SD_DIR data.root=DATA
    accelerate launch --num_processes 4 --mixed_precision fp16 train/joint.py --preset emoset-sd15 \
        data.root=/data/EmoSet-118K        # the preset reads runs/emoset-vit-l-14/final and runs/probe-emoset-vit-l-14
    torchrun --nproc_per_node 2 train/joint.py --preset tiny ...        # several CPU processes (gloo)

Explicit feedback (docs/method.md section 7): ``feedback.manifest=runs/fb/manifest.jsonl`` (train/feedback.py) mixes
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

import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from uniemo.config import parse_config, save_config
from uniemo.constants import PLACEHOLDER_TOKEN
from uniemo.training.checks import check_joint_inputs
from uniemo.training.data_config import DataConfig
from uniemo.training.joint_config import JointLossConfig, JointModelConfig, JointOptimConfig

logger = logging.getLogger("uniemo.train.joint")
PRESETS = {p.stem.replace("joint_", ""): p for p in (Path(__file__).parent / "configs").glob("joint_*.yaml")}


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
    mixed_precision: str | None = None  # no | fp16 | bf16 (frozen UNet / VAE cast to it); null: the launcher's
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


# ----------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict:
    """Run stage 2 and fit the emotion space. Returns a summary (also in metrics.jsonl)."""
    cfg = parse_config(Config, argv, presets=PRESETS, description=__doc__, checks=[check_joint_inputs])

    # Heavy imports only now, so that --help and a bad config answer at once.
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from diffusers import DDPMScheduler
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from uniemo.data import build_dataset, build_transform, collate_records
    from uniemo.data.sampler import EpochSampler, SeededAugmentation
    from uniemo.losses import weighted_sum
    from uniemo.training.stage2 import (JointTransform, UnderstandingAndFusion, build_optimizer, fit_emotion_space,
                                        joint_step, load_components, log_validation, set_trainable,
                                        update_memory_bank, validation_conditions, write_model_folder)
    from uniemo.training.utils import (WEIGHT_DTYPES, cosine_with_warmup, cpu_processes, freeze_gradless,
                                       latest_checkpoint, mixed_precision_setting)

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
    ckpt_dir = out_dir / "checkpoints"
    if cfg.resume:
        resume_dir = latest_checkpoint(ckpt_dir) if cfg.resume == "latest" else Path(cfg.resume)
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
    accelerator.end_training()
    return summary


if __name__ == "__main__":
    main()
