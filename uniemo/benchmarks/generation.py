"""``UniEmoPipeline.generate`` against the stock diffusers ``StableDiffusionPipeline`` called with a text prompt:
same UNet, scheduler, steps, guidance and size (a mid-size random Stable Diffusion)."""

from __future__ import annotations

from typing import Any

import torch

from uniemo.benchmarks.random_model import build_random_pipeline
from uniemo.benchmarks.settings import MAX_GENERATION_RATIO, BenchmarkSettings
from uniemo.benchmarks.timing import interleaved, paired_ratio, summary
from uniemo.classifier import EmoClassifierConfig
from uniemo.diffusion import TinySDConfig, build_tiny_stable_diffusion


def bench_generation(settings: BenchmarkSettings) -> dict[str, Any]:
    """One image, same UNet, scheduler, steps, guidance and size: UniEmo's condition against a text prompt."""
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
        "seconds": {name: summary(t) for name, t in times.items()},
        "ratio_vs_stock": round(ratio, 4),
        "at_most_1_05": bool(ratio <= MAX_GENERATION_RATIO),
    }
