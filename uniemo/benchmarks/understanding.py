"""The classifier's forward against transformers' CLIPVisionModel and our own plain tower, beside the ideal.

ViT-B/32 geometry, random weights, batch 1 and 32: ``EmoClassifier`` against ``CLIPVisionModel`` (sdpa
attention, the same weights through ``init_from_clip``) and against our own tower with ``use_queries=False``;
beside it the ideal ratio from matmul FLOPs at the real token counts (50 tokens in plain ViT-B/32; 50+32 in
layers 1..L1 and 50+64 after, plus the Interactive Blocks and the head), and a per-stage time/FLOP breakdown
(forward hooks) that shows where any overhead sits.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace
from typing import Any

import torch
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModel

from uniemo.benchmarks.settings import TOLERANCE_UNDERSTANDING, BenchmarkSettings
from uniemo.benchmarks.timing import interleaved, paired_ratio, summary, timed
from uniemo.classifier import EmoClassifier, EmoClassifierConfig
from uniemo.clip import init_from_clip


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
# Timing per stage


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
# The benchmark


def _clip_vision_config(config: EmoClassifierConfig) -> CLIPVisionConfig:
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
    x = torch.randn(batch, 3, config.image_size, config.image_size, generator=torch.Generator().manual_seed(1))
    calls = {"clip_sdpa": lambda: models["clip_sdpa"](pixel_values=x), "own_plain": lambda: models["own_plain"](x),
             "ours": lambda: models["ours"](x)}
    out: dict[str, Any] = {"batch": batch, "repeats": repeats}
    with torch.inference_mode():
        for name, stages in _stage_plan(models, config).items():
            runs = []
            for _ in range(repeats):
                clock = StageClock({stage: modules for stage, (modules, _) in stages.items()})
                total = timed(calls[name])
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


def bench_understanding(settings: BenchmarkSettings) -> dict[str, Any]:
    """Our classifier's forward against CLIPVisionModel (sdpa) and our plain tower, at each batch size."""
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
                "seconds": {name: summary(t) for name, t in times.items()},
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
