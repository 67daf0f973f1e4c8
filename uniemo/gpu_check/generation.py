"""(b) generation: ``UniEmoPipeline.generate`` against the stock diffusers pipeline called with a text prompt (same
UNet, scheduler, steps, guidance, size and image count), fp16, in interleaved rounds."""

from __future__ import annotations

import gc
import statistics
from collections.abc import Callable
from typing import Any

import torch
from tqdm.auto import tqdm

from uniemo.gpu_check.measure import Device, log, ratio
from uniemo.gpu_check.models import GpuCheckSettings

STOCK_PROMPT = "a photo of a lamp"
GUIDANCE = 7.5


def run_generation(parts, settings: GpuCheckSettings, device: Device) -> dict[str, Any]:
    """UniEmoPipeline.generate against the stock pipeline with a text prompt, fp16, interleaved rounds."""
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
            "peak_ratio_vs_stock": ratio(peaks["uniemo"], peaks["stock_sd"]),
        }
        log(f"generate {n}: UniEmo {per_image['uniemo']:.3f} s/image, "
            f"stock {per_image['stock_sd']:.3f} s/image")
    return out
