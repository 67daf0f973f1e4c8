"""Training throughput and memory: one joint step (``joint_step`` + backward + AdamW) of a random-weight UniEmo.

Images per second at batch 1 (the official code's only batch size) and batch 8; the peak bytes the torch CPU
allocator holds during one step, the persistent bytes of parameters, gradients and optimizer state, and the
gradient bytes held by the frozen modules (UNet, VAE, text encoder, CLIP backbone, emotion head; 0 by design),
against the official setting (UNet left at ``requires_grad=True``) and what fully unfrozen modules would hold.
"""

from __future__ import annotations

import gc
import statistics
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import torch
from diffusers import DDPMScheduler, UNet2DConditionModel
from torch.profiler import ProfilerActivity, profile

from uniemo.benchmarks.random_model import build_random_pipeline
from uniemo.benchmarks.settings import FROZEN_GROUPS, BenchmarkSettings
from uniemo.benchmarks.timing import interleaved, summary
from uniemo.classifier import EmoClassifierConfig
from uniemo.constants import PLACEHOLDER_TOKEN
from uniemo.diffusion import TinySDConfig, build_tiny_stable_diffusion
from uniemo.losses import weighted_sum
from uniemo.training.joint_config import JointLossConfig, JointModelConfig, JointOptimConfig
from uniemo.training.stage2 import UnderstandingAndFusion, build_optimizer, joint_step, set_trainable


class TrainingRig:
    """Classifier + fusion + tiny SD wired as train/joint.py wires them, random weights, the default freezing.

    Args:
        settings: sizes (``train_classifier``, ``train_sd``, ``train_fusion_hidden``).
        unet_requires_grad: leave the UNet at ``requires_grad=True`` (the official code's setting; the UNet is
            still not in the optimizer, so it only accumulates gradients).
    """

    def __init__(self, settings: BenchmarkSettings, unet_requires_grad: bool = False):
        sd_config = TinySDConfig(**settings.train_sd)
        sd = build_tiny_stable_diffusion(sd_config)
        pipe = build_random_pipeline(EmoClassifierConfig.tiny(**settings.train_classifier), sd,
                                     settings.train_fusion_hidden, sd_config.image_size)
        # the stage-2 settings one step reads, at their defaults (object prompts off, as in the paper)
        self.cfg = SimpleNamespace(model=JointModelConfig(), loss=JointLossConfig(), optim=JointOptimConfig(),
                                   resolution=sd_config.image_size, object_prompt_fraction=0.0)
        classifier, fusion = pipe.classifier, pipe.fusion
        # Freezing as train/joint.py does it.
        sd.vae.requires_grad_(False).eval()
        sd.text_encoder.requires_grad_(False).eval()
        set_trainable(classifier, fusion, sd.unet, self.cfg.model)
        sd.unet.eval()
        self.optimizer = build_optimizer(classifier, fusion, sd.unet, self.cfg.optim)
        if unet_requires_grad:
            sd.unet.requires_grad_(True)
        joint = UnderstandingAndFusion(classifier, fusion, pipe.correlation).train()
        # the models dict of train/joint.py, in fp32
        self.models = {"joint": joint, "vae": sd.vae, "unet": sd.unet, "text_encoder": sd.text_encoder,
                       "tokenizer": sd.tokenizer, "placeholder_id": pipe.placeholder_id,
                       "noise_scheduler": DDPMScheduler.from_config(sd.scheduler.config),
                       "attributes": pipe.attributes, "weight_dtype": torch.float32, "prompt": PLACEHOLDER_TOKEN}
        self.trainable = [p for group in self.optimizer.param_groups for p in group["params"]]
        backbone = [p for _, p in classifier.parameter_groups()["backbone"]]
        self.frozen_groups: dict[str, list] = {
            "unet": list(sd.unet.parameters()), "vae": list(sd.vae.parameters()),
            "text_encoder": list(sd.text_encoder.parameters()), "clip_backbone": backbone,
            "emotion_head": list(classifier.head.parameters())}
        self.all_parameters = [p for m in (classifier, fusion, sd.unet, sd.vae, sd.text_encoder)
                               for p in m.parameters()]
        self.resolution = sd_config.image_size
        self.emotions = classifier.config.emotions

    def batch(self, size: int) -> dict[str, Any]:
        g = torch.Generator().manual_seed(size)
        scenes, objects = self.models["attributes"].scenes, self.models["attributes"].objects
        return {"pixel_values": torch.rand(size, 3, self.resolution, self.resolution, generator=g),
                "labels": torch.arange(size) % len(self.emotions),
                "scene": [scenes[i % len(scenes)] for i in range(size)],
                "objects": [[objects[i % len(objects)]] for i in range(size)]}

    def step(self, batch: dict[str, Any], before_zero_grad: Callable[[], Any] | None = None) -> None:
        """One joint step as in train/joint.py: loss terms, backward, clipping, AdamW, zero_grad."""
        loss_cfg = self.cfg.loss
        weights = {"understanding": loss_cfg.understanding, "condition": loss_cfg.condition,
                   "diffusion": loss_cfg.diffusion}
        terms = joint_step(self.models, batch, self.cfg, torch.Generator().manual_seed(0))
        loss, _ = weighted_sum(weights, terms)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.trainable, self.cfg.optim.grad_clip)
        self.optimizer.step()
        if before_zero_grad is not None:
            before_zero_grad()
        self.optimizer.zero_grad(set_to_none=True)

    def grad_bytes(self) -> dict[str, int]:
        """Bytes of ``.grad`` tensors held by each frozen group, and by the trainable parameters."""
        nbytes = lambda params: sum(p.grad.nbytes for p in params if p.grad is not None)  # noqa: E731
        out = {name: nbytes(params) for name, params in self.frozen_groups.items()}
        out["trainable"] = nbytes(self.trainable)
        return out


def bench_training(settings: BenchmarkSettings) -> dict[str, Any]:
    """Images per second of one joint step (forward, backward, AdamW) at two batch sizes."""
    rig = TrainingRig(settings)
    small, large = settings.train_batches
    batches = {small: rig.batch(small), large: rig.batch(large)}
    times = interleaved({f"batch_{b}": (lambda b=b: rig.step(batches[b])) for b in (small, large)},
                        settings.train_rounds, settings.warmup)
    out: dict[str, Any] = {"resolution": rig.resolution, "rounds": settings.train_rounds,
                           "trainable_parameters": sum(p.numel() for p in rig.trainable)}
    for b in (small, large):
        seconds = statistics.median(times[f"batch_{b}"])
        out[f"batch_{b}"] = {**summary(times[f"batch_{b}"]), "images_per_s": round(b / seconds, 3)}
    # per-image speed-up of batching = (large / t_large) / (small / t_small), per round
    gain = statistics.median((large / tl) / (small / ts) for ts, tl in zip(times[f"batch_{small}"],
                                                                           times[f"batch_{large}"]))
    out.update(batches=[small, large], per_image_speedup=round(gain, 4))
    return out


def peak_allocated_bytes(fn: Callable[[], Any]) -> dict[str, int]:
    """Peak and net bytes the torch CPU allocator holds during ``fn()``, above what it held before.

    Reads the allocation/free events of ``torch.profiler`` (``profile_memory=True``) in time order. Counts every
    tensor torch allocates (activations, gradients, optimizer state, temporaries), not Python objects or the
    allocator's cached-but-free pages, so it is the figure that scales with batch and model size.
    """
    gc.collect()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    current = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        current += event.nbytes()
        peak = max(peak, current)
    return {"peak_bytes": peak, "net_bytes": current}


def _memory_of(settings: BenchmarkSettings, batch_size: int, **rig_kwargs) -> dict[str, Any]:
    rig = TrainingRig(settings, **rig_kwargs)
    batch = rig.batch(batch_size)
    rig.step(batch)  # the first step allocates AdamW's state; measure a steady-state step after it
    state = sum(t.nbytes for s in rig.optimizer.state.values() for t in s.values() if hasattr(t, "nbytes"))
    params = sum(p.nbytes for p in rig.all_parameters)
    # Held before the step: the profiler only sees what the step allocates, so add what already lives. In the
    # official setting this includes the UNet's .grad, which zero_grad never clears (the UNet is not optimised).
    held = params + state + batch["pixel_values"].nbytes + sum(
        p.grad.nbytes for p in rig.all_parameters if p.grad is not None)
    grads: dict[str, int] = {}
    memory = peak_allocated_bytes(lambda: rig.step(batch, before_zero_grad=lambda: grads.update(rig.grad_bytes())))
    return {"peak_bytes": held + memory["peak_bytes"], "peak_step_bytes": memory["peak_bytes"],
            "held_before_step_bytes": held, "grad_bytes": grads,
            "frozen_grad_bytes": sum(grads[g] for g in FROZEN_GROUPS),
            "parameter_bytes": params, "trainable_parameter_bytes": sum(p.nbytes for p in rig.trainable),
            "optimizer_state_bytes": state, "persistent_bytes": params + grads["trainable"] + state,
            "parameter_bytes_by_frozen_group": {g: sum(p.nbytes for p in ps)
                                                for g, ps in rig.frozen_groups.items()}}


def _sd15_unet_parameters() -> int:
    """Parameters of SD 1.5's UNet, counted from its architecture on the meta device (no weights, no memory)."""
    with torch.device("meta"):
        unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768)  # SD 1.5's UNet config
    return sum(p.numel() for p in unet.parameters())


def bench_memory(settings: BenchmarkSettings) -> dict[str, Any]:
    """Peak and persistent tensor bytes of one joint step, and the gradient bytes of the frozen modules."""
    batch = settings.train_batches[1]
    ours = _memory_of(settings, batch)
    official = _memory_of(settings, batch, unet_requires_grad=True)
    sd15 = _sd15_unet_parameters()
    return {
        "method": ("peak_step_bytes: highest sum of live tensor bytes torch allocates during one steady-state "
                   "joint step (forward, backward, clipping, AdamW, zero_grad), above what lived before it, from "
                   "torch.profiler memory events; peak_bytes: that plus what lived before (parameters, AdamW "
                   "state, existing .grad, the batch); persistent_bytes: parameters + trainable gradients + AdamW "
                   "state; grad_bytes: .grad bytes per module group after backward. CPU tensors only: Python "
                   "objects and the allocator's free pages are not counted."),
        "batch": batch,
        "uniemo": ours,
        "official_unet_requires_grad": official,
        "frozen_grad_bytes": ours["frozen_grad_bytes"],
        "frozen_grad_bytes_is_zero": ours["frozen_grad_bytes"] == 0,
        "official_frozen_grad_bytes": official["frozen_grad_bytes"],
        # a gradient has its parameter's shape and dtype: unfrozen, each group would hold its parameter bytes
        "unfrozen_grad_bytes": sum(ours["parameter_bytes_by_frozen_group"].values()),
        "peak_ratio_official_over_uniemo": round(official["peak_bytes"] / max(ours["peak_bytes"], 1), 4),
        "sd15_unet_parameters": sd15,
        "sd15_unet_grad_bytes_fp32": sd15 * 4,
    }
