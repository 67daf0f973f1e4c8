"""Speed and memory of UniEmo against plain baselines measured in the same process (issue 7).

Five measurements, each a ratio against a baseline timed in the same run, so that the machine's speed and
load cancel out (the absolute seconds are kept in the JSON for context only):

1. understanding: the classifier's forward (ViT-B/32 geometry, random weights, batch 1 and 32) against
   transformers' ``CLIPVisionModel`` (sdpa attention, the same weights through ``init_from_clip``) and against
   our own tower with ``use_queries=False``; beside it the ideal ratio from matmul FLOPs at the real token
   counts (50 tokens in plain ViT-B/32; 50+32 in layers 1..L1 and 50+64 after, plus the Interactive Blocks
   and the head), and a per-stage time/FLOP breakdown (forward hooks) that shows where any overhead sits;
2. generation: ``UniEmoPipeline.generate`` against the stock diffusers ``StableDiffusionPipeline`` called
   with a text prompt: same UNet, scheduler, steps, guidance and size (a mid-size random SD);
3. training: images per second of one joint step (``train.joint.joint_step`` + backward + AdamW step) at
   batch 1 (the official code's only batch size) and batch 8;
4. memory: the peak bytes the torch CPU allocator holds during one joint step, the persistent bytes of
   parameters, gradients and optimizer state, and the gradient bytes held by the frozen modules (UNet, VAE,
   text encoder, CLIP backbone, emotion head; 0 by design), against the official setting (UNet left at
   ``requires_grad=True``) and what fully unfrozen modules would hold;
5. demo latency: ``demo.handlers.classify_image`` / ``generate_images`` on UniEmo-Tiny against the bare
   classifier forward and the stock SD pipeline with a text prompt.

Timing: every contender is warmed up, then the contenders run in interleaved rounds whose order alternates
(A B, B A, A B, ...) so that both see the same background load; a ratio is the median of the per-round
ratios. Other processes share the CPU, so single timings are noisy: read the ratios, not the seconds. One
torch thread by default (``--threads``): on a shared CPU a second intra-op thread waits at every op for a core
another process holds (the tiny classifier's 2 ms forward took 550 ms with 2 threads under load), which
measures the scheduler rather than the code.

Usage (offline, random weights built in code, about 3-4 minutes on 2 CPU cores; ``--quick`` for tests):

    python eval/benchmark.py --out runs/benchmark.json --readme README.md
    python eval/benchmark.py --quick --out /tmp/bench.json

``--readme`` rewrites the table between ``<!-- benchmark:start -->`` and ``<!-- benchmark:end -->`` (adding
a "## Benchmarks" section before "## Citation" when the markers are missing), from the same results.
Nothing here is adapted from another repository.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field, replace  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from typing import TYPE_CHECKING, Any  # noqa: E402

if TYPE_CHECKING:  # torch is imported inside the functions so that --help stays fast
    from torch import nn

    from uniemo.classifier import EmoClassifierConfig

ROOT = Path(__file__).resolve().parents[1]
README_START = "<!-- benchmark:start -->"
README_END = "<!-- benchmark:end -->"
TOLERANCE_UNDERSTANDING = 0.15  # measured / ideal ratio may differ from 1 by this much
MAX_GENERATION_RATIO = 1.05  # UniEmo generate vs the stock pipeline
FROZEN_GROUPS = ("unet", "vae", "text_encoder", "clip_backbone", "emotion_head")


# ----------------------------------------------------------------------------------------------------------
# Settings


@dataclass
class Settings:
    """Sizes and repeat counts; ``full()`` is the README run, ``quick()`` the test run."""

    # understanding: geometry overrides on EmoClassifierConfig.from_preset("vit-b-32")
    classifier: dict[str, Any] = field(default_factory=dict)
    understanding_batches: tuple[int, ...] = (1, 32)
    understanding_rounds: tuple[int, ...] = (9, 3)  # interleaved rounds per batch size
    breakdown_batch: int = 8
    breakdown_repeats: int = 2
    # generation: a mid-size random Stable Diffusion
    sd: dict[str, Any] = field(default_factory=lambda: dict(
        image_size=64, unet_block_out_channels=(64, 128, 256),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        layers_per_block=1, attention_head_dim=8, cross_attention_dim=256, vae_block_out_channels=(32, 64, 64),
        text_num_layers=4, text_num_heads=4, text_intermediate_size=1024))
    generation_steps: int = 20
    generation_rounds: int = 7
    # training and memory: UniEmo-Tiny's geometry (train/tiny_world.py), random weights
    train_classifier: dict[str, Any] = field(
        default_factory=lambda: dict(patch_size=4, width=64, heads=4, proj_dim=64))
    train_sd: dict[str, Any] = field(default_factory=lambda: dict(
        unet_block_out_channels=(64, 128), cross_attention_dim=64, text_num_layers=3))
    train_fusion_hidden: int = 64
    train_batches: tuple[int, int] = (1, 8)
    train_rounds: int = 7
    # demo
    demo_steps: int | None = None  # None: the demo's own default (the model's default within the CPU limits)
    demo_rounds: int = 5
    warmup: int = 1

    @classmethod
    def full(cls) -> Settings:
        return cls()

    @classmethod
    def quick(cls) -> Settings:
        """Small sizes and few repeats: the same code paths in well under a minute."""
        return cls(
            classifier=dict(image_size=64, patch_size=16, width=64, layers=6, heads=2, proj_dim=32,
                            num_scene_queries=4, num_object_queries=4, head_hidden=64),
            understanding_batches=(1, 4), understanding_rounds=(3, 3), breakdown_batch=2, breakdown_repeats=1,
            sd=dict(image_size=32), generation_steps=2, generation_rounds=3,
            train_classifier={}, train_sd={}, train_fusion_hidden=64, train_batches=(1, 4), train_rounds=3,
            demo_steps=2, demo_rounds=3,
        )


# ----------------------------------------------------------------------------------------------------------
# FLOPs (matmuls only: 2 FLOPs per multiply-accumulate; norms, softmax and activations are left out, they are
# elementwise and small next to the matmuls)


def transformer_layer_flops(tokens: int, width: int, mlp_hidden: int) -> int:
    """One pre-norm ViT block over ``tokens`` tokens: QKV, scores, weighted sum, output projection, MLP."""
    qkv = 2 * tokens * width * 3 * width
    attention = 2 * (2 * tokens * tokens * width)  # Q K^T and A V, summed over heads (h * N * N * D/h)
    out = 2 * tokens * width * width
    mlp = 2 * 2 * tokens * width * mlp_hidden
    return qkv + attention + out + mlp


def cross_attention_layer_flops(queries: int, context: int, width: int, mlp_hidden: int) -> int:
    """One Interactive layer: queries attend to ``context`` tokens (Q from the queries, K/V from the context)."""
    projections = 2 * queries * width * width + 2 * (2 * context * width * width) + 2 * queries * width * width
    attention = 2 * (2 * queries * context * width)
    mlp = 2 * 2 * queries * width * mlp_hidden
    return projections + attention + mlp


def classifier_flops(config: EmoClassifierConfig, head: bool = True) -> dict[str, Any]:
    """Forward FLOPs per image of ``EmoClassifier(config)``, split by part, at the real token counts.

    With ``use_queries=False`` this is the plain CLIP tower (``head=False``: transformers' ``CLIPVisionModel``,
    which has no emotion head).

    Returns:
        ``{"patch_embed", "layers", "interactive_blocks", "head", "total"}`` in FLOPs, and ``stages``: one
        ``[num_layers, tokens]`` pair per stretch of layers with the same token count.
    """
    D = config.width
    hidden = int(D * config.mlp_ratio)
    P = config.grid_size ** 2
    T = 1 + P  # CLS + patches
    patch_embed = 2 * P * (3 * config.patch_size ** 2) * D
    if config.use_queries:
        l1, l2 = config.resolved_split_layers
        Ks, Ko = config.num_scene_queries, config.num_object_queries
        # layers 1..L1 see the scene queries; from L1+1 on the object queries are appended as well
        stages = [[l1, T + Ks], [config.layers - l1, T + Ks + Ko]]
        context = P if config.interactive_kv == "patch" else T
        interactive = config.interactive_layers * (cross_attention_layer_flops(Ks, context, D, hidden)
                                                   + cross_attention_layer_flops(Ko, context, D, hidden))
    else:
        stages = [[config.layers, T]]
        interactive = 0
    layers = sum(n * transformer_layer_flops(tokens, D, hidden) for n, tokens in stages)
    head_flops = 2 * D * config.head_hidden + 2 * config.head_hidden * config.num_classes if head else 0
    return {"patch_embed": patch_embed, "layers": layers, "interactive_blocks": interactive, "head": head_flops,
            "total": patch_embed + layers + interactive + head_flops, "stages": stages}


def ideal_ratios(config: EmoClassifierConfig) -> dict[str, Any]:
    """FLOPs of the classifier over the plain tower (without head, as CLIPVisionModel; and with it, as ours)."""
    ours = classifier_flops(config)
    plain = replace(config, use_queries=False)
    clip = classifier_flops(plain, head=False)
    own_plain = classifier_flops(plain)
    return {"ours": ours, "clip_sdpa": clip, "own_plain": own_plain,
            "ideal_ratio_vs_clip_sdpa": ours["total"] / clip["total"],
            "ideal_ratio_vs_own_plain": ours["total"] / own_plain["total"]}


# ----------------------------------------------------------------------------------------------------------
# Timing


def _timed(fn: Callable[[], Any]) -> float:
    gc.collect()  # a collection inside a timed call would be charged to whoever happened to trigger it
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(calls: dict[str, Callable[[], Any]], rounds: int, warmup: int = 1) -> dict[str, list[float]]:
    """Seconds per call of each contender over ``rounds`` rounds, after ``warmup`` untimed calls each.

    The order alternates between rounds (A B C, C B A, ...), so a load change during the run hits every
    contender about equally, and each round's ratios compare calls made seconds apart.
    """
    names = list(calls)
    for _ in range(warmup):
        for name in names:
            calls[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            times[name].append(_timed(calls[name]))
    return times


def paired_ratio(times: dict[str, list[float]], numerator: str, denominator: str) -> float:
    """Median over rounds of time(numerator) / time(denominator)."""
    return statistics.median(a / b for a, b in zip(times[numerator], times[denominator]))


def _summary(seconds: list[float]) -> dict[str, Any]:
    return {"median_s": round(statistics.median(seconds), 6), "min_s": round(min(seconds), 6),
            "all_s": [round(s, 6) for s in seconds]}


class StageClock:
    """Wall time spent inside groups of modules, via forward pre/post hooks (no change to model code)."""

    def __init__(self, groups: dict[str, list[nn.Module]]):
        self.seconds: dict[str, float] = {name: 0.0 for name in groups}
        self._started: dict[int, float] = {}
        self._handles = []
        for name, modules in groups.items():
            for module in modules:
                self._handles.append(module.register_forward_pre_hook(self._pre))
                self._handles.append(module.register_forward_hook(lambda m, a, o, name=name: self._post(m, name)))

    def _pre(self, module: nn.Module, args: Any) -> None:
        self._started[id(module)] = time.perf_counter()

    def _post(self, module: nn.Module, name: str) -> None:
        self.seconds[name] += time.perf_counter() - self._started.pop(id(module))

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


# ----------------------------------------------------------------------------------------------------------
# 1. Understanding


def _clip_vision_config(config: EmoClassifierConfig):
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(
        image_size=config.image_size, patch_size=config.patch_size, hidden_size=config.width,
        intermediate_size=int(config.width * config.mlp_ratio), num_hidden_layers=config.layers,
        num_attention_heads=config.heads, hidden_act="quick_gelu", layer_norm_eps=config.layer_norm_eps)


def _stage_plan(models: dict[str, nn.Module], config: EmoClassifierConfig) -> dict[str, dict[str, tuple]]:
    """model -> stage -> (the modules timed together, their FLOPs per image)."""
    flops = ideal_ratios(config)
    hidden = int(config.width * config.mlp_ratio)
    [[n0, t0]] = flops["clip_sdpa"]["stages"]
    [[n1, t1], [n2, t2]] = flops["ours"]["stages"]
    l1 = config.resolved_split_layers[0]
    ours, plain, clip = models["ours"], models["own_plain"], models["clip_sdpa"]
    clip_layers = getattr(clip, "vision_model", clip).encoder.layers  # transformers 5 has no vision_model level
    return {
        "clip_sdpa": {
            f"layers_{t0}_tokens": (list(clip_layers), n0 * transformer_layer_flops(t0, config.width, hidden))},
        "own_plain": {
            f"layers_{t0}_tokens": (list(plain.transformer.resblocks),
                                    n0 * transformer_layer_flops(t0, config.width, hidden)),
            "head": ([plain.head], flops["own_plain"]["head"])},
        "ours": {
            f"layers_{t1}_tokens": (list(ours.transformer.resblocks[:l1]),
                                    n1 * transformer_layer_flops(t1, config.width, hidden)),
            f"layers_{t2}_tokens": (list(ours.transformer.resblocks[l1:]),
                                    n2 * transformer_layer_flops(t2, config.width, hidden)),
            "interactive_blocks": ([ours.scene_block, ours.object_block], flops["ours"]["interactive_blocks"]),
            "head": ([ours.head], flops["ours"]["head"])},
    }


def _breakdown(models: dict[str, nn.Module], config: EmoClassifierConfig, batch: int, repeats: int
               ) -> dict[str, Any]:
    """Seconds and GFLOP/s per stage of each model at one batch size: where the time goes, per FLOP.

    ``relative_speed`` divides a stage's GFLOP/s by that of CLIPVisionModel's layers, so a stage of our code
    that is slow for the work it does stands out (below 1) whatever the machine's speed.
    """
    import torch

    x = torch.randn(batch, 3, config.image_size, config.image_size, generator=torch.Generator().manual_seed(1))
    calls = {"clip_sdpa": lambda: models["clip_sdpa"](pixel_values=x), "own_plain": lambda: models["own_plain"](x),
             "ours": lambda: models["ours"](x)}
    out: dict[str, Any] = {"batch": batch, "repeats": repeats}
    with torch.inference_mode():
        for name, stages in _stage_plan(models, config).items():
            runs = []
            for _ in range(repeats):
                clock = StageClock({stage: modules for stage, (modules, _) in stages.items()})
                total = _timed(calls[name])
                clock.remove()
                runs.append((total, clock.seconds))
            total = statistics.median(r[0] for r in runs)
            report = {}
            for stage, (_, flops) in stages.items():
                seconds = statistics.median(r[1][stage] for r in runs)
                report[stage] = {"seconds": round(seconds, 6), "gflop": round(batch * flops / 1e9, 4),
                                 "gflop_per_s": round(batch * flops / 1e9 / max(seconds, 1e-9), 2)}
            report["other"] = {"seconds": round(max(total - sum(r["seconds"] for r in report.values()), 0.0), 6)}
            out[name] = {"total_s": round(total, 6), "stages": report}
    reference = next(iter(out["clip_sdpa"]["stages"].values()))["gflop_per_s"]
    for name in calls:
        for stage in out[name]["stages"].values():
            if "gflop_per_s" in stage:
                stage["relative_speed"] = round(stage["gflop_per_s"] / max(reference, 1e-9), 3)
    return out


def bench_understanding(settings: Settings) -> dict[str, Any]:
    import torch
    from transformers import CLIPVisionModel

    from uniemo.classifier import EmoClassifier, EmoClassifierConfig
    from uniemo.clip import init_from_clip

    config = EmoClassifierConfig.from_preset("vit-b-32", **settings.classifier)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        clip = CLIPVisionModel._from_config(_clip_vision_config(config), attn_implementation="sdpa").eval()
        ours = init_from_clip(EmoClassifier(config), clip).eval()
        own_plain = init_from_clip(EmoClassifier(replace(config, use_queries=False)), clip).eval()
    models = {"clip_sdpa": clip, "own_plain": own_plain, "ours": ours}

    flops = ideal_ratios(config)
    result: dict[str, Any] = {
        "geometry": {k: getattr(config, k) for k in ("image_size", "patch_size", "width", "layers", "heads",
                                                     "num_scene_queries", "num_object_queries",
                                                     "interactive_layers", "interactive_kv")},
        "split_layers": list(config.resolved_split_layers),
        "clip_attn_implementation": clip.config._attn_implementation,
        "flops_per_image": {k: v for k, v in flops.items() if k in ("ours", "clip_sdpa", "own_plain")},
        "ideal_ratio_vs_clip_sdpa": round(flops["ideal_ratio_vs_clip_sdpa"], 4),
        "ideal_ratio_vs_own_plain": round(flops["ideal_ratio_vs_own_plain"], 4),
        "batches": {},
    }
    with torch.inference_mode():
        # Same weights: our plain tower must reproduce transformers' pooled output.
        probe = torch.randn(2, 3, config.image_size, config.image_size, generator=torch.Generator().manual_seed(0))
        result["parity_max_abs_diff"] = float(
            (own_plain(probe).cls_embed - clip(pixel_values=probe).pooler_output).abs().max())
        for batch, rounds in zip(settings.understanding_batches, settings.understanding_rounds):
            x = torch.randn(batch, 3, config.image_size, config.image_size,
                            generator=torch.Generator().manual_seed(batch))
            times = interleaved({"clip_sdpa": lambda: clip(pixel_values=x), "own_plain": lambda: own_plain(x),
                                 "ours": lambda: ours(x)}, rounds, settings.warmup)
            vs_clip = paired_ratio(times, "ours", "clip_sdpa")
            result["batches"][str(batch)] = {
                "rounds": rounds,
                "seconds": {name: _summary(t) for name, t in times.items()},
                "ratio_vs_clip_sdpa": round(vs_clip, 4),
                "ratio_vs_own_plain": round(paired_ratio(times, "ours", "own_plain"), 4),
                "own_plain_vs_clip_sdpa": round(paired_ratio(times, "own_plain", "clip_sdpa"), 4),
                "measured_over_ideal": round(vs_clip / flops["ideal_ratio_vs_clip_sdpa"], 4),
            }
    largest = str(max(settings.understanding_batches))
    measured = result["batches"][largest]["ratio_vs_clip_sdpa"]
    deviation = measured / flops["ideal_ratio_vs_clip_sdpa"] - 1
    result.update(checked_at_batch=int(largest), measured_ratio=measured, deviation_from_ideal=round(deviation, 4),
                  within_15_percent=bool(abs(deviation) <= TOLERANCE_UNDERSTANDING))
    result["breakdown"] = _breakdown(models, config, settings.breakdown_batch, settings.breakdown_repeats)
    return result


# ----------------------------------------------------------------------------------------------------------
# Random-weight UniEmo pieces (no training needed to measure time and memory)


def _random_attribute_base(proj_dim: int, emotions: tuple[str, ...], seed: int = 0):
    """A small attribute base and α table with random unit text embeddings."""
    import torch

    from uniemo.attributes import AttributeTargets
    from uniemo.correlation import CorrelationTable

    g = torch.Generator().manual_seed(seed)
    scenes = ["sky", "sea", "forest", "room", "city", "meadow"]
    objects = ["balloon", "skull", "cake", "spider", "flower", "knife", "lamp", "tree"]
    unit = lambda n: torch.nn.functional.normalize(torch.randn(n, proj_dim, generator=g), dim=-1)  # noqa: E731
    scene_embeds, object_embeds = unit(len(scenes)), unit(len(objects))
    attributes = AttributeTargets(scenes, objects, scene_embeds, object_embeds)
    alpha = lambda n: torch.randn(n, len(emotions), generator=g).softmax(-1)  # noqa: E731
    correlation = CorrelationTable(scenes, objects, scene_embeds, object_embeds, alpha(len(scenes)),
                                   alpha(len(objects)), [1] * len(scenes), [1] * len(objects), emotions)
    return attributes, correlation


def build_random_pipeline(classifier_config: EmoClassifierConfig, sd_pipe, fusion_hidden: int, resolution: int,
                          seed: int = 0):
    """A ``UniEmoPipeline`` around ``sd_pipe`` with random classifier, fusion, emotion space, attributes and α."""
    import torch

    from uniemo.classifier import EmoClassifier
    from uniemo.diffusion import add_placeholder_token
    from uniemo.emotion_space import KINDS, EmotionSpace
    from uniemo.fusion import EmoFusion, EmoFusionConfig
    from uniemo.pipeline import UniEmoPipeline

    emotions = classifier_config.emotions
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        classifier = EmoClassifier(classifier_config)
        placeholder_id = add_placeholder_token(sd_pipe.tokenizer, sd_pipe.text_encoder)
        text_width = sd_pipe.text_encoder.get_input_embeddings().embedding_dim
        fusion = EmoFusion(EmoFusionConfig(vision_width=classifier_config.width, hidden_size=fusion_hidden,
                                           text_width=text_width, num_classes=len(emotions), emotions=emotions))
        labels = torch.arange(len(emotions)).repeat(4)
        space = EmotionSpace.fit({k: torch.randn(len(labels), classifier_config.width) for k in KINDS}, labels,
                                 emotions)
    attributes, correlation = _random_attribute_base(classifier_config.proj_dim, emotions, seed)
    return UniEmoPipeline(classifier, fusion, space, attributes, sd_pipe, placeholder_id, correlation,
                          resolution=resolution, info={"name": "random-weights benchmark model"}).to("cpu")


# ----------------------------------------------------------------------------------------------------------
# 2. Generation


def bench_generation(settings: Settings) -> dict[str, Any]:
    import torch

    from uniemo.classifier import EmoClassifierConfig
    from uniemo.diffusion import TinySDConfig, build_tiny_stable_diffusion

    sd_config = TinySDConfig(**settings.sd)
    sd = build_tiny_stable_diffusion(sd_config)
    sd.set_progress_bar_config(disable=True)
    pipe = build_random_pipeline(EmoClassifierConfig.tiny(), sd, fusion_hidden=256,
                                 resolution=sd_config.image_size)
    size, steps, guidance, prompt = sd_config.image_size, settings.generation_steps, 7.5, "a photo of a lamp"

    def stock():
        # what a user of plain Stable Diffusion runs: a text prompt, the empty negative, same sampler settings
        return sd(prompt=prompt, height=size, width=size, num_inference_steps=steps, guidance_scale=guidance,
                  generator=torch.Generator().manual_seed(0), output_type="pil").images

    def ours():
        return pipe.generate("awe", num_images=1, seed=0, num_inference_steps=steps, guidance_scale=guidance,
                             size=size)

    times = interleaved({"stock_sd": stock, "uniemo": ours}, settings.generation_rounds, settings.warmup)
    ratio = paired_ratio(times, "uniemo", "stock_sd")
    return {
        "sd_config": {k: list(v) if isinstance(v, tuple) else v for k, v in vars(sd_config).items()},
        "unet_parameters": sum(p.numel() for p in sd.unet.parameters()),
        "scheduler": type(sd.scheduler).__name__, "steps": steps, "guidance_scale": guidance, "size": size,
        "num_images": 1, "stock_prompt": prompt, "rounds": settings.generation_rounds,
        "seconds": {name: _summary(t) for name, t in times.items()},
        "ratio_vs_stock": round(ratio, 4),
        "at_most_1_05": bool(ratio <= MAX_GENERATION_RATIO),
    }


# ----------------------------------------------------------------------------------------------------------
# 3-4. Training throughput and memory


class TrainingRig:
    """Classifier + fusion + tiny SD wired as in ``train/joint.py``'s ``main``, random weights, any freezing.

    Args:
        settings: sizes (``train_classifier``, ``train_sd``, ``train_fusion_hidden``).
        unet_requires_grad: leave the UNet at ``requires_grad=True`` (the official code's setting; the UNet is
            still not in the optimizer, so it only accumulates gradients).
    """

    def __init__(self, settings: Settings, unet_requires_grad: bool = False):
        import torch
        from diffusers import DDPMScheduler

        from train.joint import Config
        from uniemo.training.stage2 import UnderstandingAndFusion, build_optimizer, set_trainable
        from uniemo.classifier import EmoClassifierConfig
        from uniemo.diffusion import TinySDConfig, build_tiny_stable_diffusion

        sd_config = TinySDConfig(**settings.train_sd)
        sd = build_tiny_stable_diffusion(sd_config)
        pipe = build_random_pipeline(EmoClassifierConfig.tiny(**settings.train_classifier), sd,
                                     settings.train_fusion_hidden, sd_config.image_size)
        self.cfg = Config(resolution=sd_config.image_size)
        classifier, fusion = pipe.classifier, pipe.fusion
        # Freezing exactly as train/joint.py's main does it.
        sd.vae.requires_grad_(False).eval()
        sd.text_encoder.requires_grad_(False).eval()
        set_trainable(classifier, fusion, sd.unet, self.cfg.model)
        sd.unet.eval()
        self.optimizer = build_optimizer(classifier, fusion, sd.unet, self.cfg.optim)
        if unet_requires_grad:
            sd.unet.requires_grad_(True)
        joint = UnderstandingAndFusion(classifier, fusion, pipe.correlation).train()
        # the models dict of train/joint.py's main, in fp32
        self.models = {"joint": joint, "vae": sd.vae, "unet": sd.unet, "text_encoder": sd.text_encoder,
                       "tokenizer": sd.tokenizer, "placeholder_id": pipe.placeholder_id,
                       "noise_scheduler": DDPMScheduler.from_config(sd.scheduler.config),
                       "attributes": pipe.attributes, "weight_dtype": torch.float32, "prompt": "<emotion>"}
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
        import torch

        g = torch.Generator().manual_seed(size)
        scenes, objects = self.models["attributes"].scenes, self.models["attributes"].objects
        return {"pixel_values": torch.rand(size, 3, self.resolution, self.resolution, generator=g),
                "labels": torch.arange(size) % len(self.emotions),
                "scene": [scenes[i % len(scenes)] for i in range(size)],
                "objects": [[objects[i % len(objects)]] for i in range(size)]}

    def step(self, batch: dict[str, Any], before_zero_grad: Callable[[], Any] | None = None) -> None:
        """One joint step as in ``train/joint.py``: loss terms, backward, clipping, AdamW, zero_grad."""
        import torch

        from uniemo.training.stage2 import joint_step
        from uniemo.losses import weighted_sum

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


def bench_training(settings: Settings) -> dict[str, Any]:
    rig = TrainingRig(settings)
    small, large = settings.train_batches
    batches = {small: rig.batch(small), large: rig.batch(large)}
    times = interleaved({f"batch_{b}": (lambda b=b: rig.step(batches[b])) for b in (small, large)},
                        settings.train_rounds, settings.warmup)
    out: dict[str, Any] = {"resolution": rig.resolution, "rounds": settings.train_rounds,
                           "trainable_parameters": sum(p.numel() for p in rig.trainable)}
    for b in (small, large):
        seconds = statistics.median(times[f"batch_{b}"])
        out[f"batch_{b}"] = {**_summary(times[f"batch_{b}"]), "images_per_s": round(b / seconds, 3)}
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
    from torch.profiler import ProfilerActivity, profile

    gc.collect()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    current = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        current += event.nbytes()
        peak = max(peak, current)
    return {"peak_bytes": peak, "net_bytes": current}


def _memory_of(settings: Settings, batch_size: int, **rig_kwargs) -> dict[str, Any]:
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
    import torch
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768)  # SD 1.5's UNet config
    return sum(p.numel() for p in unet.parameters())


def bench_memory(settings: Settings) -> dict[str, Any]:
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


# ----------------------------------------------------------------------------------------------------------
# 5. Demo latency


def _demo_pipeline(work_dir: Path):
    """UniEmo-Tiny from ``assets/uniemo-tiny`` if present, else a random-weight model with the geometry of the
    tests' ``tiny_model_dir`` fixture, saved and reloaded through ``from_pretrained`` (the demo's own path)."""
    from uniemo.classifier import EmoClassifierConfig
    from uniemo.diffusion import build_tiny_stable_diffusion
    from uniemo.pipeline import UniEmoPipeline

    bundled = ROOT / "assets" / "uniemo-tiny"
    if (bundled / "uniemo.json").is_file():
        return UniEmoPipeline.from_pretrained(bundled), "assets/uniemo-tiny (the bundled UniEmo-Tiny)"
    pipe = build_random_pipeline(EmoClassifierConfig.tiny(head_dropout=0.0), build_tiny_stable_diffusion(), 64, 32)
    pipe.save_pretrained(work_dir / "uniemo-tiny-random")
    return (UniEmoPipeline.from_pretrained(work_dir / "uniemo-tiny-random"),
            "random weights, geometry of the tiny_model_dir test fixture (assets/uniemo-tiny is absent)")


def _demo_image(work_dir: Path) -> Path:
    from PIL import Image

    examples = sorted((ROOT / "assets" / "examples").glob("*.png"))
    if examples:
        return examples[0]
    path = work_dir / "example.png"
    Image.effect_noise((128, 128), 64).convert("RGB").save(path)
    return path


def bench_demo(settings: Settings, work_dir: Path) -> dict[str, Any]:
    import torch

    from uniemo.pipeline import load_input_image

    pipe, source = _demo_pipeline(work_dir)
    image_path = _demo_image(work_dir)
    try:
        from demo import handlers
    except ImportError:
        handlers = None
    emotion = pipe.emotions[0]
    if handlers is not None:
        defaults = handlers.default_settings(pipe)
        size = handlers.demo_limits(pipe).size
        entry = "demo.handlers.classify_image / generate_images"
    else:
        defaults = {"num_images": 1, "num_inference_steps": pipe.defaults["num_inference_steps"],
                    "guidance_scale": pipe.defaults["guidance_scale"]}
        size = pipe.resolution
        entry = "UniEmoPipeline.classify / generate (demo/handlers.py not found)"
    steps = settings.demo_steps or defaults["num_inference_steps"]
    n, guidance = defaults["num_images"], defaults["guidance_scale"]
    pixel_values = pipe.transform(load_input_image(str(image_path))).unsqueeze(0)

    def bare_forward():
        with torch.no_grad():
            return pipe.classifier(pixel_values)

    def classify():
        if handlers is not None:
            return handlers.classify_image(pipe, str(image_path))
        return pipe.classify(str(image_path))

    def generate():
        if handlers is not None:
            return handlers.generate_images(pipe, emotion, num_images=n, seed=0, steps=steps, guidance=guidance)
        return pipe.generate(emotion, num_images=n, seed=0, num_inference_steps=steps, guidance_scale=guidance,
                             size=size)

    def stock():
        generators = [torch.Generator().manual_seed(i) for i in range(n)]
        return pipe.sd(prompt=emotion, height=size, width=size, num_inference_steps=steps, guidance_scale=guidance,
                       num_images_per_prompt=n, generator=generators, output_type="pil").images

    understand = interleaved({"bare_classifier_forward": bare_forward, "classify": classify},
                             settings.demo_rounds, settings.warmup)
    create = interleaved({"stock_sd": stock, "generate": generate}, settings.demo_rounds, settings.warmup)
    return {
        "model": source, "entry_points": entry, "image": image_path.name,
        "generate_settings": {"emotion": emotion, "num_images": n, "steps": steps, "guidance_scale": guidance,
                              "size": size, "scheduler": type(pipe.sd.scheduler).__name__},
        "rounds": settings.demo_rounds,
        "seconds": {k: _summary(v) for k, v in {**understand, **create}.items()},
        "classify_ratio_vs_bare_forward": round(paired_ratio(understand, "classify", "bare_classifier_forward"),
                                                4),
        "generate_ratio_vs_stock_sd": round(paired_ratio(create, "generate", "stock_sd"), 4),
    }


# ----------------------------------------------------------------------------------------------------------
# README table


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _mb(nbytes: int) -> str:
    return f"{nbytes / 2**20:.1f} MiB"


def _yes(flag: bool) -> str:
    return "yes" if flag else "**no**"


def render_table(results: dict[str, Any]) -> str:
    """The README section body (between the markers), generated from the benchmark JSON alone."""
    u, g, t, m, d = (results[k] for k in ("understanding", "generation", "training", "memory", "demo"))
    env, geo = results["environment"], u["geometry"]
    rows = []
    for batch, r in u["batches"].items():
        checked = batch == str(u["checked_at_batch"])
        for key, name in (("clip_sdpa", "transformers CLIPVisionModel (sdpa)"), ("own_plain", "own plain tower")):
            target = f"ideal {u[f'ideal_ratio_vs_{key}']:.2f}x (FLOPs)"
            holds = ""
            if key == "clip_sdpa" and checked:
                target += f" ± {TOLERANCE_UNDERSTANDING:.0%}"
                holds = _yes(u["within_15_percent"])
            rows.append([f"Classifier forward, batch {batch}", _ms(r["seconds"]["ours"]["median_s"]),
                         f"{name} {_ms(r['seconds'][key]['median_s'])}", f"{r[f'ratio_vs_{key}']:.2f}x", target,
                         holds])
    rows.append([f"Generate, {g['steps']} steps at {g['size']} px", _ms(g["seconds"]["uniemo"]["median_s"]),
                 f"stock StableDiffusionPipeline, text prompt {_ms(g['seconds']['stock_sd']['median_s'])}",
                 f"{g['ratio_vs_stock']:.3f}x", f"<= {MAX_GENERATION_RATIO}x", _yes(g["at_most_1_05"])])
    small, large = t["batches"]
    rows.append([f"Joint training step at batch {large}, images/s",
                 f"{t[f'batch_{large}']['images_per_s']:.1f}/s",
                 f"batch {small} (the official code's limit) {t[f'batch_{small}']['images_per_s']:.1f}/s",
                 f"{t['per_image_speedup']:.2f}x faster", "> 1x", _yes(t["per_image_speedup"] > 1)])
    official = m["official_unet_requires_grad"]
    rows.append([f"Peak tensor memory of a joint step, batch {m['batch']}", _mb(m["uniemo"]["peak_bytes"]),
                 f"UNet left at requires_grad=True (official) {_mb(official['peak_bytes'])}",
                 f"{m['uniemo']['peak_bytes'] / max(official['peak_bytes'], 1):.2f}x", "", ""])
    rows.append(["Gradient bytes in frozen modules (UNet, VAE, text encoder, CLIP backbone, emotion head)",
                 f"{m['frozen_grad_bytes']} B",
                 f"official {_mb(m['official_frozen_grad_bytes'])}; all unfrozen {_mb(m['unfrozen_grad_bytes'])}; "
                 f"SD 1.5's UNet alone {m['sd15_unet_grad_bytes_fp32'] / 2**30:.2f} GiB", "", "0",
                 _yes(m["frozen_grad_bytes_is_zero"])])
    ds, gen = d["seconds"], d["generate_settings"]
    rows.append(["Demo: classify an image", _ms(ds["classify"]["median_s"]),
                 f"bare classifier forward {_ms(ds['bare_classifier_forward']['median_s'])}",
                 f"{d['classify_ratio_vs_bare_forward']:.1f}x", "", ""])
    rows.append([f"Demo: generate {gen['num_images']} images, {gen['steps']} steps at {gen['size']} px",
                 _ms(ds["generate"]["median_s"]),
                 f"stock StableDiffusionPipeline, text prompt {_ms(ds['stock_sd']['median_s'])}",
                 f"{d['generate_ratio_vs_stock_sd']:.3f}x", "", ""])
    header = ["Measure", "UniEmo", "Baseline (same run)", "Ratio", "Target", "Holds"]
    threads = env["torch_threads"]
    speeds = {f"{model} {stage}": v["relative_speed"] for model in ("ours", "own_plain")
              for stage, v in u["breakdown"][model]["stages"].items()
              if stage.startswith(("layers", "interactive"))}
    return "\n".join([
        f"Generated by `{results['command']}` on {results['date']}: {env['cpu_count']} CPU cores shared "
        f"with other jobs (load average {env['load_average_start'][0]:.1f}), {threads} torch "
        f"thread{'s' if threads != 1 else ''}, torch {env['torch']}, random weights. Medians of interleaved "
        "runs; a ratio is the median of per-round ratios. Regenerate, don't edit.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(str(c) for c in row) + " |" for row in rows),
        "",
        f"- Classifier: ViT {geo['image_size']} px / {geo['patch_size']} px patches, width {geo['width']}, "
        f"{geo['layers']} layers, {geo['num_scene_queries']} + {geo['num_object_queries']} queries, "
        f"{geo['interactive_layers']}-layer Interactive Blocks. Per FLOP, at batch {u['breakdown']['batch']}, "
        "these stages run at " + ", ".join(f"{v:.2f}x ({k})" for k, v in speeds.items())
        + " the speed of CLIPVisionModel's layers (1 = the same GFLOP/s; below 1 = overhead in our code).",
        f"- Generation: a random SD with a {g['unet_parameters'] / 1e6:.0f}M-parameter UNet, {g['scheduler']}, "
        f"guidance {g['guidance_scale']}; the same UNet, scheduler, steps and size for both.",
        f"- Training and memory: UniEmo-Tiny's geometry ({t['resolution']} px), `joint_step` + backward + "
        "AdamW; frozen modules as in `train/joint.py`. Peak tensor memory = what lives before a steady-state "
        "step (weights, AdamW state, leftover gradients) + the highest bytes torch allocates during it "
        "(torch.profiler memory events).",
        f"- Demo: {d['model']}; entry points {d['entry_points']}.",
    ])


def update_readme(path: str | Path, body: str) -> None:
    """Put ``body`` between the benchmark markers of ``path``; add the markers (and a "## Benchmarks"
    section before "## Citation", else at the end) when they are missing. Everything else is untouched."""
    path = Path(path)
    text = path.read_text() if path.exists() else ""
    block = f"{README_START}\n{body}\n{README_END}"
    if README_START in text and README_END in text:
        pattern = re.compile(re.escape(README_START) + r".*?" + re.escape(README_END), re.DOTALL)
        text = pattern.sub(lambda _: block, text, count=1)
    else:
        section = f"## Benchmarks\n\n{block}\n\n"
        anchor = re.search(r"^## Citation", text, re.MULTILINE)
        if anchor:
            text = text[:anchor.start()] + section + text[anchor.start():]
        else:
            text = text.rstrip("\n") + ("\n\n" if text else "") + section.rstrip("\n") + "\n"
    path.write_text(text)


# ----------------------------------------------------------------------------------------------------------


def _environment() -> dict[str, Any]:
    import diffusers
    import torch
    import transformers

    return {"python": platform.python_version(), "platform": platform.platform(), "torch": torch.__version__,
            "transformers": transformers.__version__, "diffusers": diffusers.__version__,
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "load_average_start": [round(x, 2) for x in os.getloadavg()]}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/benchmark.json", help="the JSON file to write")
    parser.add_argument("--readme", default=None, help="a README whose benchmark table to regenerate")
    parser.add_argument("--quick", action="store_true", help="small sizes and few repeats (tests)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1: on a CPU shared with other jobs a second thread "
                             "waits at every op for a core another process holds, which measures the scheduler, "
                             "not the code)")
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run every measurement, write the JSON (and the README table). Returns the results."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    if args.threads < 1:
        raise ValueError(f"--threads must be at least 1, got {args.threads}")
    settings = Settings.quick() if args.quick else Settings.full()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return _run(args, argv, settings)
    finally:
        torch.set_num_threads(previous_threads)  # main() is also called inside test processes


def _run(args: argparse.Namespace, argv: list[str] | None, settings: Settings) -> dict[str, Any]:
    import torch

    start = time.perf_counter()
    results: dict[str, Any] = {
        "command": "python eval/benchmark.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "quick": args.quick,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "environment": _environment(),
        "timing_method": ("warm-up call(s), then interleaved rounds with alternating order; medians of seconds, "
                          "ratios = median of per-round ratios; gc.collect() before every timed call"),
    }
    with torch.random.fork_rng(devices=[]), tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        sections = {"understanding": lambda: bench_understanding(settings),
                    "generation": lambda: bench_generation(settings),
                    "training": lambda: bench_training(settings),
                    "memory": lambda: bench_memory(settings),
                    "demo": lambda: bench_demo(settings, Path(tmp))}
        for name, run in sections.items():
            section_start = time.perf_counter()
            results[name] = run()
            results[name]["elapsed_s"] = round(time.perf_counter() - section_start, 1)
    results["environment"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    results["checks"] = {
        "understanding_within_15_percent_of_ideal": results["understanding"]["within_15_percent"],
        "generation_at_most_1_05_of_stock": results["generation"]["at_most_1_05"],
        "frozen_module_grad_bytes_zero": results["memory"]["frozen_grad_bytes_is_zero"],
        "batching_raises_per_image_throughput": results["training"]["per_image_speedup"] > 1,
    }
    results["elapsed_seconds"] = round(time.perf_counter() - start, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    if args.readme:
        update_readme(args.readme, render_table(results))
    return results


if __name__ == "__main__":
    result = main()
    print(json.dumps({"checks": result["checks"], "elapsed_seconds": result["elapsed_seconds"]}, indent=2))
