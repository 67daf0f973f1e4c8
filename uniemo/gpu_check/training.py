"""(a) stage-2 training speed and memory, and (c) the official code's setting against ours.

Stage-2 steps as ``train/joint.py`` takes them (``uniemo.training.stage2.joint_step`` under autocast, GradScaler
for fp16, gradient clipping, AdamW, the cosine schedule), per precision, batch size and gradient checkpointing.
"""

from __future__ import annotations

import math
import statistics
from types import SimpleNamespace
from typing import Any

import torch
from diffusers import DDPMScheduler
from tqdm.auto import tqdm

from uniemo.constants import PLACEHOLDER_TOKEN
from uniemo.gpu_check.measure import Device, gib, log, ratio
from uniemo.gpu_check.models import GpuCheckSettings
from uniemo.losses import weighted_sum
from uniemo.training.stage2 import UnderstandingAndFusion, build_optimizer, joint_step, set_trainable
from uniemo.training.utils import cosine_with_warmup


def stage2_config(resolution: int) -> SimpleNamespace:
    """The fields of ``train/joint.py``'s Config that ``joint_step``, ``set_trainable`` and ``build_optimizer``
    read, at its defaults (the library cannot import the recipe, so the dataclasses are mirrored here)."""
    ns = SimpleNamespace
    return ns(
        resolution=resolution, seed=0, object_prompt_fraction=0.0,
        loss=ns(understanding=0.3, condition=0.3, diffusion=0.4, scene=0.25, object=0.25, emotion=0.5,
                temperature=0.07, symmetric=False, released_masking=False, condition_margin=0.1,
                condition_variant="paper"),
        model=ns(train_queries=True, train_projections=True, train_backbone=False, train_head=False,
                 train_unet=False),
        optim=ns(lr_queries=5e-4, lr_mappers=1e-3, lr_projections=1e-4, lr_backbone=8e-6, lr_head=1e-4,
                 lr_unet=1e-5, weight_decay=1e-2, betas=(0.9, 0.999), warmup_ratio=0.02, grad_clip=1.0),
    )


class Trainer:
    """The stage-2 loop body of ``train/joint.py``'s main, for one precision, on modules already on the device.

    The constructor casts the frozen UNet / VAE / text encoder to the half dtype on the device, in place (so a
    second precision casts from the first: the weights are random, only their sizes matter); the classifier and
    fusion stay in float32 and keep training across configurations. Each configuration (``run``) gets a fresh
    AdamW, schedule and GradScaler.
    """

    def __init__(self, parts, cfg: SimpleNamespace, device: Device, precision: str):
        self.parts, self.cfg, self.dev, self.precision = parts, cfg, device, precision
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        sd = parts.sd
        sd.vae.requires_grad_(False).eval()
        sd.text_encoder.requires_grad_(False).eval()
        sd.vae.to(device.device, dtype=self.dtype)
        sd.text_encoder.to(device.device, dtype=self.dtype)
        sd.unet.to(device.device, dtype=self.dtype).eval()
        parts.classifier.to(device.device, dtype=torch.float32)
        parts.fusion.to(device.device, dtype=torch.float32)
        self.joint = UnderstandingAndFusion(parts.classifier, parts.fusion, parts.correlation)
        self.models = {"joint": self.joint, "vae": sd.vae, "unet": sd.unet, "text_encoder": sd.text_encoder,
                       "tokenizer": sd.tokenizer,
                       "noise_scheduler": DDPMScheduler.from_config(sd.scheduler.config),
                       "placeholder_id": parts.placeholder_id, "attributes": parts.attributes,
                       "weight_dtype": self.dtype, "prompt": PLACEHOLDER_TOKEN}
        self.weights = {k: getattr(cfg.loss, k) for k in ("understanding", "condition", "diffusion")}

    def batch(self, size: int) -> dict[str, Any]:
        g = torch.Generator().manual_seed(size)
        a = self.parts.attributes
        return {"pixel_values": torch.rand(size, 3, self.cfg.resolution, self.cfg.resolution,
                                           generator=g).to(self.dev.device),
                "labels": torch.arange(size) % len(self.parts.classifier.config.emotions),
                "scene": [a.scenes[i % len(a.scenes)] for i in range(size)],
                "objects": [[a.objects[i % len(a.objects)], a.objects[(i + 1) % len(a.objects)]]
                            for i in range(size)]}

    def run(self, batch_size: int, checkpointing: bool, warmup: int, steps: int, official: bool = False,
            label: str = "") -> dict[str, Any]:
        """``warmup`` + ``steps`` optimizer steps; the numbers of the timed ones."""
        parts, cfg, dev = self.parts, self.cfg, self.dev
        unet, classifier = parts.sd.unet, parts.classifier
        set_trainable(classifier, parts.fusion, unet, cfg.model)
        if checkpointing:
            unet.enable_gradient_checkpointing()
        else:
            unet.disable_gradient_checkpointing()
        classifier.set_grad_checkpointing(checkpointing)
        optimizer = build_optimizer(classifier, parts.fusion, unet, cfg.optim)
        if official:  # the released code never freezes the UNet: it is not optimised but gets gradients
            unet.requires_grad_(True)
        total = warmup + steps
        scheduler = cosine_with_warmup(optimizer, int(cfg.optim.warmup_ratio * total), total)
        scaler = torch.amp.GradScaler(dev.device.type, enabled=self.precision == "fp16")
        trainable = [p for group in optimizer.param_groups for p in group["params"]]
        batch = self.batch(batch_size)
        self.joint.train()
        dev.clear()
        resident = dev.allocated()  # weights and the batch; AdamW's state comes with the first step

        def step(i: int):
            generator = torch.Generator().manual_seed(cfg.seed * 7919 + i * 31)
            with torch.autocast(dev.device.type, dtype=self.dtype):
                terms = joint_step(self.models, batch, cfg, generator)
                loss, _ = weighted_sum(self.weights, terms)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(trainable, cfg.optim.grad_clip)
            scale = scaler.get_scale() if scaler.is_enabled() else None
            scaler.step(optimizer)
            scaler.update()
            stepped = scale is None or scaler.get_scale() >= scale  # fp16: a lowered scale means inf/NaN, skipped
            if stepped:  # as accelerate does: the schedule advances only with the optimizer
                scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            return loss.detach(), stepped

        seconds, losses, skipped = [], [], 0
        for i in tqdm(range(total), desc=label, unit="step", leave=False):
            s, (loss, stepped) = dev.timed(lambda: step(i))
            seconds.append(s)
            losses.append(float(loss))
            skipped += not stepped
        timed = seconds[warmup:]
        per_step = statistics.median(timed)
        unet_grad = sum(p.grad.nbytes for p in unet.parameters() if p.grad is not None)
        result = {
            "precision": self.precision, "batch": batch_size, "gradient_checkpointing": checkpointing,
            "official_unet_requires_grad": official, "warmup_steps": warmup, "timed_steps": steps,
            "s_per_step": round(per_step, 6), "s_per_step_all": [round(s, 6) for s in timed],
            "warmup_s": [round(s, 6) for s in seconds[:warmup]],
            "images_per_s": round(batch_size / per_step, 4),
            "peak_bytes": dev.peak(), "resident_before_bytes": resident, "resident_after_bytes": dev.allocated(),
            "unet_grad_bytes": int(unet_grad),
            "trainable_parameters": sum(p.numel() for p in trainable),
            "losses": [round(v, 6) for v in losses], "losses_finite": all(math.isfinite(v) for v in losses),
            "skipped_optimizer_steps": skipped,
        }
        # the official setting's UNet gradients go, so that the next configuration starts from ours
        for p in unet.parameters():
            p.grad = None
        unet.requires_grad_(False)
        return result  # the optimizer, its state and the batch go with this frame


def run_training(parts, settings: GpuCheckSettings, device: Device) -> tuple[dict[str, Any], dict[str, Any]]:
    """(a) every precision x batch x checkpointing, then (c) the official setting (fp16, batch 1)."""
    cfg = stage2_config(settings.resolution)
    configs, official = [], None
    # fp16 last: (c) runs on its modules, and generation (fp16) follows
    for precision in sorted(settings.precisions, key=lambda p: p == "fp16"):
        trainer = Trainer(parts, cfg, device, precision)
        for batch in settings.batches:
            for ckpt in settings.checkpointing:
                label = f"train {precision} batch {batch}{' checkpointed' if ckpt else ''}"
                c = trainer.run(batch, ckpt, settings.warmup, settings.steps, label=label)
                configs.append(c)
                log(f"{label}: {c['s_per_step']:.4f} s/step, {c['images_per_s']:.2f} img/s, "
                    f"peak {gib(c['peak_bytes'])}")
        if precision == "fp16":
            official = trainer.run(1, False, settings.warmup, settings.steps, official=True,
                                   label="official: fp16 batch 1, UNet requires_grad")
            log(f"official setting: {official['s_per_step']:.4f} s/step, peak {gib(official['peak_bytes'])}, "
                f"UNet gradients {gib(official['unet_grad_bytes'])}")
        parts.sd.unet.disable_gradient_checkpointing()
        parts.classifier.set_grad_checkpointing(False)
    training = {"configs": configs, "ratios": training_ratios(configs, settings)}
    return training, official_section(official, configs) if official is not None else {}


def find_config(configs: list[dict], precision: str, batch: int, ckpt: bool) -> dict | None:
    return next((c for c in configs if (c["precision"], c["batch"], c["gradient_checkpointing"])
                 == (precision, batch, ckpt)), None)


def training_ratios(configs: list[dict], settings: GpuCheckSettings) -> dict[str, Any]:
    """Per image batch speed-up, checkpointing's memory and time factors, bf16 over fp16."""
    small, large = min(settings.batches), max(settings.batches)
    out: dict[str, Any] = {}
    for precision in settings.precisions:
        r: dict[str, Any] = {}
        for ckpt in settings.checkpointing:
            tag = "checkpointed" if ckpt else "plain"
            a, b = find_config(configs, precision, small, ckpt), find_config(configs, precision, large, ckpt)
            r[f"images_per_s_batch_{large}_over_batch_{small}_{tag}"] = ratio(b["images_per_s"],
                                                                              a["images_per_s"])
        if True in settings.checkpointing and False in settings.checkpointing:
            for batch in settings.batches:
                on = find_config(configs, precision, batch, True)
                off = find_config(configs, precision, batch, False)
                r[f"checkpointing_peak_ratio_batch_{batch}"] = ratio(on["peak_bytes"], off["peak_bytes"])
                r[f"checkpointing_time_ratio_batch_{batch}"] = ratio(on["s_per_step"], off["s_per_step"])
        out[precision] = r
    if {"bf16", "fp16"} <= set(settings.precisions):
        out["bf16_over_fp16_s_per_step"] = {}
        for c in configs:
            if c["precision"] == "bf16":
                fp16 = find_config(configs, "fp16", c["batch"], c["gradient_checkpointing"])
                tag = "checkpointed" if c["gradient_checkpointing"] else "plain"
                out["bf16_over_fp16_s_per_step"][f"batch_{c['batch']}_{tag}"] = ratio(c["s_per_step"],
                                                                                     fp16["s_per_step"])
    return out


def official_section(official: dict[str, Any], configs: list[dict]) -> dict[str, Any]:
    """(c) against ours at the same batch and precision, and against our fastest fp16 configuration."""
    ours = find_config(configs, "fp16", official["batch"], False)
    best = max((c for c in configs if c["precision"] == "fp16"), key=lambda c: c["images_per_s"])
    return {
        "setting": "the released code's: batch 1, fp16, the frozen UNet left at requires_grad=True (it is not "
                   "in the optimizer, so its gradients are computed and kept but never used). Only the UNet: "
                   "the released code's frozen CLIP backbone, also left at requires_grad=True, is frozen here as "
                   "in ours",
        "official": official,
        "ours_same_setting": {k: ours[k] for k in ("precision", "batch", "s_per_step", "images_per_s",
                                                   "peak_bytes", "unet_grad_bytes")},
        "peak_ratio_official_over_ours": ratio(official["peak_bytes"], ours["peak_bytes"]),
        "extra_peak_bytes": (None if official["peak_bytes"] is None or ours["peak_bytes"] is None
                             else official["peak_bytes"] - ours["peak_bytes"]),
        "s_per_step_ratio_official_over_ours": ratio(official["s_per_step"], ours["s_per_step"]),
        "ours_best_fp16": {k: best[k] for k in ("batch", "gradient_checkpointing", "images_per_s", "peak_bytes")},
        "images_per_s_ours_best_over_official": ratio(best["images_per_s"], official["images_per_s"]),
    }
