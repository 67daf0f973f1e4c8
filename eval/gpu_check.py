"""GPU check at the real models' geometry, random weights: stage-2 training speed and memory, and generation.

Builds, with random weights (nothing is downloaded; ``uniemo.real_geometry``), the UniEmo classifier on CLIP
ViT-L/14's geometry, its fusion (text width 768) and Stable Diffusion 1.5's UNet, VAE and text encoder (with
the real 49 408-token BPE tokenizer), then measures on one CUDA GPU:

(a) training: stage-2 steps as ``train/joint.py`` takes them (``uniemo.training.stage2.joint_step`` under
    autocast, GradScaler for fp16, gradient clipping, AdamW, the cosine schedule; frozen UNet / VAE / text
    encoder cast to the half dtype, trainable queries + fusion in fp32), in bf16 and fp16, at batch 1 and 8,
    512 px, with and without gradient checkpointing (the UNet's and the ViT's): seconds per step, images per
    second and peak GPU memory (``torch.cuda.max_memory_allocated``, reset before each configuration), after
    ``--warmup`` untimed steps;
(b) generation: ``UniEmoPipeline.generate`` (UniPC, 50 steps, guidance 7.5, 512 px, fp16) at 1 and 4 images,
    next to the stock diffusers ``StableDiffusionPipeline`` called with a text prompt (same UNet, scheduler,
    steps, guidance, size and image count), in interleaved rounds; seconds per image and the ratio;
(c) the official code's setting: batch 1, fp16, the frozen UNet left at ``requires_grad=True`` (so it computes
    and keeps parameter gradients that no optimizer reads), against ours at the same batch and precision.

Everything goes to ``--out`` (JSON): the device, library versions, geometry, each configuration's numbers and
the ratios (batch 8 over batch 1 per image, checkpointing over none, bf16 over fp16, official over ours,
UniEmo over the stock pipeline). Timings are CUDA-synchronised; the first configuration also pays the kernels'
first-use costs, which the warm-up steps absorb. The defaults are sized to finish within a few minutes on one
H100 (an estimate: ``elapsed_s`` in the JSON says what a run took).

Without CUDA it refuses (exit status 2) unless ``--cpu-smoke`` is given: the same code at tiny geometry (the
"tiny" classifier preset, ``build_tiny_stable_diffusion``, its 32 px, one step each) on the CPU, for tests.
There peak memory is the process's peak resident set (VmHWM, reset through /proc/self/clear_refs).

    python eval/gpu_check.py --out runs/gpu_check.json
    python eval/gpu_check.py --cpu-smoke --out /tmp/gpu_check.json
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any, Callable

STOCK_PROMPT = "a photo of a lamp"
GUIDANCE = 7.5


@dataclass
class Settings:
    """What to measure: the defaults are the GPU run, ``smoke()`` the CPU run of the same code at tiny geometry."""

    precisions: tuple[str, ...] = ("bf16", "fp16")
    batches: tuple[int, ...] = (1, 8)
    checkpointing: tuple[bool, ...] = (False, True)
    warmup: int = 3  # untimed training steps per configuration
    steps: int = 5  # timed training steps per configuration
    resolution: int = 512
    generation_steps: int = 50
    generation_batches: tuple[int, ...] = (1, 4)
    generation_warmup: int = 1  # untimed rounds
    generation_rounds: int = 2  # timed rounds, each: UniEmo and stock, in alternating order
    fusion_hidden: int = 1024

    @classmethod
    def smoke(cls) -> Settings:
        return cls(batches=(1, 2), warmup=0, steps=1, resolution=32, generation_steps=2, generation_batches=(1, 2),
                   generation_warmup=0, generation_rounds=1, fusion_hidden=64)


def stage2_config(resolution: int) -> SimpleNamespace:
    """The fields of ``train/joint.py``'s Config that ``joint_step``, ``set_trainable`` and ``build_optimizer``
    read, at its defaults (scripts under eval/ import only ``uniemo``, so the dataclasses are mirrored here)."""
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


# ----------------------------------------------------------------------------------------------------------
# Device helpers


class Device:
    """Synchronisation and peak-memory readings for CUDA, and their CPU stand-ins for the smoke run."""

    def __init__(self, name: str):
        import torch

        self.torch = torch
        self.device = torch.device(name)
        self.cuda = self.device.type == "cuda"

    def synchronize(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize(self.device)

    def clear(self) -> None:
        """Free what the last configuration left (the allocator's cache too) and restart the peak counter."""
        gc.collect()
        if self.cuda:
            self.torch.cuda.synchronize(self.device)
            self.torch.cuda.empty_cache()
        self.reset_peak()

    def reset_peak(self) -> None:
        if self.cuda:
            self.torch.cuda.reset_peak_memory_stats(self.device)
            return
        try:  # "5" resets the peak resident set size (VmHWM) of this process
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass

    def allocated(self) -> int | None:
        if self.cuda:
            return int(self.torch.cuda.memory_allocated(self.device))
        return _proc_status_bytes("VmRSS")

    def peak(self) -> int | None:
        if self.cuda:
            return int(self.torch.cuda.max_memory_allocated(self.device))
        return _proc_status_bytes("VmHWM")

    @property
    def memory_kind(self) -> str:
        return ("torch.cuda.max_memory_allocated (tensor bytes)" if self.cuda
                else "process peak resident set, VmHWM (CPU smoke run: not comparable to GPU figures)")

    def timed(self, fn: Callable[[], Any]) -> tuple[float, Any]:
        self.synchronize()
        start = time.perf_counter()
        result = fn()
        self.synchronize()
        return time.perf_counter() - start, result


def _proc_status_bytes(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else round(a / b, 4)


def _parameters(module) -> int:
    return sum(p.numel() for p in module.parameters())


# ----------------------------------------------------------------------------------------------------------
# Models


def build_models(settings: Settings, smoke: bool, seed: int = 0):
    """Classifier, fusion, SD pipeline and the random rest (``UniEmoParts``), float32 on the CPU."""
    from uniemo import real_geometry as rg

    if smoke:
        from uniemo.diffusion import TinySDConfig, build_tiny_stable_diffusion

        sd = build_tiny_stable_diffusion(TinySDConfig(image_size=settings.resolution), seed=seed)
        classifier = rg.build_classifier("tiny", seed=seed)
    else:
        sd = rg.build_sd15_pipeline(seed=seed)
        classifier = rg.build_vit_l14_classifier(seed=seed)
    text_width = sd.text_encoder.get_input_embeddings().embedding_dim
    fusion = rg.build_fusion(classifier.config, text_width=text_width, hidden_size=settings.fusion_hidden,
                             seed=seed)
    return rg.random_uniemo_parts(classifier, fusion, sd, seed=seed)


def geometry(parts) -> dict[str, Any]:
    c, f, sd = parts.classifier.config, parts.fusion.config, parts.sd
    unet, vae, te = sd.unet.config, sd.vae.config, sd.text_encoder.config
    return {
        "classifier": {"preset": c.preset, "image_size": c.image_size, "patch_size": c.patch_size,
                       "width": c.width, "layers": c.layers, "heads": c.heads,
                       "queries": [c.num_scene_queries, c.num_object_queries],
                       "parameters": _parameters(parts.classifier)},
        "fusion": {"vision_width": f.vision_width, "hidden_size": f.hidden_size, "text_width": f.text_width,
                   "parameters": _parameters(parts.fusion)},
        "unet": {"block_out_channels": list(unet.block_out_channels), "layers_per_block": unet.layers_per_block,
                 "cross_attention_dim": unet.cross_attention_dim, "sample_size": unet.sample_size,
                 "parameters": _parameters(sd.unet)},
        "vae": {"block_out_channels": list(vae.block_out_channels), "latent_channels": vae.latent_channels,
                "scaling_factor": vae.scaling_factor, "parameters": _parameters(sd.vae)},
        "text_encoder": {"hidden_size": te.hidden_size, "layers": te.num_hidden_layers,
                         "heads": te.num_attention_heads, "vocab_size": te.vocab_size,
                         "tokenizer_size": len(sd.tokenizer), "placeholder_id": parts.placeholder_id,
                         "parameters": _parameters(sd.text_encoder)},  # sizes with the placeholder's row
    }


# ----------------------------------------------------------------------------------------------------------
# (a) + (c) training


class Trainer:
    """The stage-2 loop body of ``train/joint.py``'s main, for one precision, on modules already on the device.

    The constructor casts the frozen UNet / VAE / text encoder to the half dtype on the device, in place (so a
    second precision casts from the first: the weights are random, only their sizes matter); the classifier and
    fusion stay in float32 and keep training across configurations. Each configuration (``run``) gets a fresh
    AdamW, schedule and GradScaler.
    """

    def __init__(self, parts, cfg: SimpleNamespace, device: Device, precision: str):
        import torch
        from diffusers import DDPMScheduler

        from uniemo.constants import PLACEHOLDER_TOKEN
        from uniemo.training.stage2 import UnderstandingAndFusion

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
        import torch

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
        import torch
        from tqdm.auto import tqdm

        from uniemo.losses import weighted_sum
        from uniemo.training.stage2 import build_optimizer, joint_step, set_trainable
        from uniemo.training.utils import cosine_with_warmup

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


def run_training(parts, settings: Settings, device: Device) -> tuple[dict[str, Any], dict[str, Any]]:
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
                _print(f"{label}: {c['s_per_step']:.4f} s/step, {c['images_per_s']:.2f} img/s, "
                       f"peak {_gib(c['peak_bytes'])}")
        if precision == "fp16":
            official = trainer.run(1, False, settings.warmup, settings.steps, official=True,
                                   label="official: fp16 batch 1, UNet requires_grad")
            _print(f"official setting: {official['s_per_step']:.4f} s/step, peak {_gib(official['peak_bytes'])}, "
                   f"UNet gradients {_gib(official['unet_grad_bytes'])}")
        parts.sd.unet.disable_gradient_checkpointing()
        parts.classifier.set_grad_checkpointing(False)
    training = {"configs": configs, "ratios": training_ratios(configs, settings)}
    return training, official_section(official, configs) if official is not None else {}


def _find(configs: list[dict], precision: str, batch: int, ckpt: bool) -> dict | None:
    return next((c for c in configs if (c["precision"], c["batch"], c["gradient_checkpointing"])
                 == (precision, batch, ckpt)), None)


def training_ratios(configs: list[dict], settings: Settings) -> dict[str, Any]:
    """Per image batch speed-up, checkpointing's memory and time factors, bf16 over fp16."""
    small, large = min(settings.batches), max(settings.batches)
    out: dict[str, Any] = {}
    for precision in settings.precisions:
        r: dict[str, Any] = {}
        for ckpt in settings.checkpointing:
            tag = "checkpointed" if ckpt else "plain"
            a, b = _find(configs, precision, small, ckpt), _find(configs, precision, large, ckpt)
            r[f"images_per_s_batch_{large}_over_batch_{small}_{tag}"] = _ratio(b["images_per_s"],
                                                                               a["images_per_s"])
        if True in settings.checkpointing and False in settings.checkpointing:
            for batch in settings.batches:
                on, off = _find(configs, precision, batch, True), _find(configs, precision, batch, False)
                r[f"checkpointing_peak_ratio_batch_{batch}"] = _ratio(on["peak_bytes"], off["peak_bytes"])
                r[f"checkpointing_time_ratio_batch_{batch}"] = _ratio(on["s_per_step"], off["s_per_step"])
        out[precision] = r
    if {"bf16", "fp16"} <= set(settings.precisions):
        out["bf16_over_fp16_s_per_step"] = {}
        for c in configs:
            if c["precision"] == "bf16":
                fp16 = _find(configs, "fp16", c["batch"], c["gradient_checkpointing"])
                tag = "checkpointed" if c["gradient_checkpointing"] else "plain"
                out["bf16_over_fp16_s_per_step"][f"batch_{c['batch']}_{tag}"] = _ratio(c["s_per_step"],
                                                                                      fp16["s_per_step"])
    return out


def official_section(official: dict[str, Any], configs: list[dict]) -> dict[str, Any]:
    """(c) against ours at the same batch and precision, and against our fastest fp16 configuration."""
    ours = _find(configs, "fp16", official["batch"], False)
    best = max((c for c in configs if c["precision"] == "fp16"), key=lambda c: c["images_per_s"])
    return {
        "setting": "the released code's: batch 1, fp16, the frozen UNet left at requires_grad=True (it is not "
                   "in the optimizer, so its gradients are computed and kept but never used). Only the UNet: "
                   "the released code's frozen CLIP backbone, also left at requires_grad=True, is frozen here as "
                   "in ours",
        "official": official,
        "ours_same_setting": {k: ours[k] for k in ("precision", "batch", "s_per_step", "images_per_s",
                                                   "peak_bytes", "unet_grad_bytes")},
        "peak_ratio_official_over_ours": _ratio(official["peak_bytes"], ours["peak_bytes"]),
        "extra_peak_bytes": (None if official["peak_bytes"] is None or ours["peak_bytes"] is None
                             else official["peak_bytes"] - ours["peak_bytes"]),
        "s_per_step_ratio_official_over_ours": _ratio(official["s_per_step"], ours["s_per_step"]),
        "ours_best_fp16": {k: best[k] for k in ("batch", "gradient_checkpointing", "images_per_s", "peak_bytes")},
        "images_per_s_ours_best_over_official": _ratio(best["images_per_s"], official["images_per_s"]),
    }


# ----------------------------------------------------------------------------------------------------------
# (b) generation


def run_generation(parts, settings: Settings, device: Device) -> dict[str, Any]:
    """UniEmoPipeline.generate against the stock pipeline with a text prompt, fp16, interleaved rounds."""
    import torch
    from tqdm.auto import tqdm

    pipe = parts.pipeline(resolution=settings.resolution).to(device.device, torch.float16)
    sd, steps, size = pipe.sd, settings.generation_steps, settings.resolution
    sd.set_progress_bar_config(disable=True)

    def calls(n: int) -> dict[str, Callable[[], Any]]:
        def uniemo():
            return pipe.generate(pipe.emotions[0], num_images=n, seed=0, num_inference_steps=steps,
                                 guidance_scale=GUIDANCE, size=size)

        def stock():  # what a user of plain Stable Diffusion runs, with the same sampler and settings
            return sd(prompt=STOCK_PROMPT, height=size, width=size, num_inference_steps=steps,
                      guidance_scale=GUIDANCE, num_images_per_prompt=n, output_type="pil",
                      generator=[torch.Generator().manual_seed(i) for i in range(n)]).images

        return {"uniemo": uniemo, "stock_sd": stock}

    out: dict[str, Any] = {"scheduler": type(sd.scheduler).__name__, "steps": steps, "guidance_scale": GUIDANCE,
                           "size": size, "dtype": "fp16", "stock_prompt": STOCK_PROMPT,
                           "warmup_rounds": settings.generation_warmup, "timed_rounds": settings.generation_rounds,
                           "batches": {}}
    rounds = settings.generation_warmup + settings.generation_rounds
    for n in settings.generation_batches:
        fns = calls(n)
        seconds: dict[str, list[float]] = {name: [] for name in fns}
        peaks: dict[str, int | None] = {name: None for name in fns}
        for r in tqdm(range(rounds), desc=f"generate {n} image(s), {steps} steps", unit="round", leave=False):
            for name in (list(fns) if r % 2 == 0 else list(fns)[::-1]):
                gc.collect()
                device.reset_peak()  # the allocator's cache stays: emptying it would time cudaMalloc calls
                s, images = device.timed(fns[name])
                assert len(images) == n
                peak = device.peak()
                peaks[name] = peak if peaks[name] is None else max(peaks[name], peak or 0)
                if r >= settings.generation_warmup:
                    seconds[name].append(s)
        per_image = {name: statistics.median(v) / n for name, v in seconds.items()}
        per_round = [a / b for a, b in zip(seconds["uniemo"], seconds["stock_sd"])]
        out["batches"][f"batch_{n}"] = {
            "num_images": n,
            "s_per_image": {name: round(v, 6) for name, v in per_image.items()},
            "s_per_call_all": {name: [round(s, 6) for s in v] for name, v in seconds.items()},
            "peak_bytes": peaks,
            "ratio_vs_stock": round(statistics.median(per_round), 4),  # median of the per-round ratios
            "peak_ratio_vs_stock": _ratio(peaks["uniemo"], peaks["stock_sd"]),
        }
        _print(f"generate {n}: UniEmo {per_image['uniemo']:.3f} s/image, "
               f"stock {per_image['stock_sd']:.3f} s/image")
    return out


# ----------------------------------------------------------------------------------------------------------


def _gib(nbytes: int | None) -> str:
    return "n/a" if nbytes is None else f"{nbytes / 2**30:.2f} GiB"


def _print(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def environment(device: Device) -> dict[str, Any]:
    import diffusers
    import torch
    import transformers

    env = {"python": platform.python_version(), "platform": platform.platform(), "torch": torch.__version__,
           "diffusers": diffusers.__version__, "transformers": transformers.__version__,
           "cuda": torch.version.cuda, "device": str(device.device)}
    if device.cuda:
        props = torch.cuda.get_device_properties(device.device)
        env.update(device_name=props.name, device_memory_bytes=int(props.total_memory),
                   capability=f"{props.major}.{props.minor}", cudnn=torch.backends.cudnn.version())
    else:
        env.update(device_name=platform.processor() or platform.machine(), cpu_count=os.cpu_count(),
                   torch_threads=torch.get_num_threads())
    return env


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/gpu_check.json", help="the JSON file to write")
    parser.add_argument("--cpu-smoke", action="store_true",
                        help="no GPU needed: the same code at tiny geometry on the CPU, one step each (tests)")
    parser.add_argument("--device", default="cuda", help="the CUDA device to measure (default cuda)")
    parser.add_argument("--steps", type=int, default=None, help="timed training steps per configuration (5)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed training steps per configuration (3)")
    parser.add_argument("--generation-rounds", type=int, default=None, help="timed generation rounds (2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Build the models, run (a), (c) and (b), write the JSON. Returns the results."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    if args.cpu_smoke:
        settings, device_name = Settings.smoke(), "cpu"
    else:
        if not torch.cuda.is_available():
            _print("eval/gpu_check.py: no CUDA GPU is available (torch.cuda.is_available() is False); this check "
                   "measures real-size models on a GPU. Run it on a CUDA machine, or pass --cpu-smoke to exercise "
                   "the same code at tiny geometry on the CPU.")
            raise SystemExit(2)
        if not args.device.startswith("cuda"):
            raise ValueError(f"--device must be a CUDA device (cuda, cuda:N), got {args.device!r}; for the CPU "
                             "use --cpu-smoke")
        settings, device_name = Settings(), args.device
    overrides = {"steps": args.steps, "warmup": args.warmup, "generation_rounds": args.generation_rounds}
    for name, value in overrides.items():
        if value is not None:
            if value < (1 if name != "warmup" else 0):
                raise ValueError(f"--{name.replace('_', '-')} must be at least {1 if name != 'warmup' else 0}")
            setattr(settings, name, value)
    device = Device(device_name)

    start = time.perf_counter()
    elapsed: dict[str, float] = {}
    results: dict[str, Any] = {
        "command": "python eval/gpu_check.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "mode": "cpu-smoke" if args.cpu_smoke else "cuda",
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "environment": environment(device),
        "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(settings).items()},
        "memory_measure": device.memory_kind,
        "weights": "random (seed %d); nothing downloaded" % args.seed,
        "notes": {
            "s_per_step": "median over the timed steps, each CUDA-synchronised; images_per_s = batch / s_per_step",
            "peak_bytes": "the peak over one configuration's steps, weights included (resident_before_bytes: "
                          "what lived before its first step)",
            "training.ratios": "images_per_s_batch_B_over_batch_b: per-image speed-up of the larger batch; "
                               "checkpointing_*_ratio: checkpointed over plain; bf16_over_fp16: seconds per step",
            "official": "*_official_over_ours: the released code's setting over ours (batch 1, fp16, plain)",
            "generation": "ratio_vs_stock: UniEmo's seconds over the stock pipeline's, median of per-round ratios",
        },
    }
    _print(f"building the models ({'tiny' if args.cpu_smoke else 'SD 1.5 + ViT-L/14'} geometry, random weights)")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        parts = build_models(settings, args.cpu_smoke, args.seed)
        results["geometry"] = geometry(parts)
        elapsed["build"] = round(time.perf_counter() - start, 1)
        t = time.perf_counter()
        results["training"], results["official"] = run_training(parts, settings, device)
        elapsed["training_and_official"] = round(time.perf_counter() - t, 1)
        t = time.perf_counter()
        device.clear()
        results["generation"] = run_generation(parts, settings, device)
        elapsed["generation"] = round(time.perf_counter() - t, 1)
    elapsed["total"] = round(time.perf_counter() - start, 1)
    results["elapsed_s"] = elapsed
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    _print(f"wrote {out} ({elapsed['total']} s)")
    return results


if __name__ == "__main__":
    main()
