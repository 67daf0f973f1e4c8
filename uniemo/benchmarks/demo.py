"""Demo latency: classifying an image and generating images with UniEmo-Tiny, as the demo's pages ask for them.

The demo's handlers (demo/handlers.py) validate a request and then call ``UniEmoPipeline.classify`` /
``generate``; these calls are timed here at the settings a first visit to the page uses on UniEmo-Tiny (2
images, the model's default steps, guidance and resolution: a 32-64 px model is not capped on a CPU), against
the bare classifier forward and the stock Stable Diffusion pipeline with a text prompt. The handlers' own work
around the call (argument checks, attention overlays, enlarging small images for display) is not timed: the
library cannot import the demo.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from PIL import Image

from uniemo.benchmarks.random_model import build_random_pipeline
from uniemo.benchmarks.settings import BenchmarkSettings
from uniemo.benchmarks.timing import interleaved, paired_ratio, summary
from uniemo.classifier import EmoClassifierConfig
from uniemo.data.images import open_image
from uniemo.diffusion import build_tiny_stable_diffusion
from uniemo.pipeline import UniEmoPipeline

DEMO_NUM_IMAGES = 2  # the demo's first-visit number of images


def demo_pipeline(assets: Path, work_dir: Path) -> tuple[UniEmoPipeline, str]:
    """UniEmo-Tiny from ``assets/uniemo-tiny`` if present, else a random-weight model with the geometry of the
    tests' ``tiny_model_dir`` fixture, saved and reloaded through ``from_pretrained`` (the demo's own path).

    Returns:
        (pipeline, a description of the model for the report)
    """
    bundled = assets / "uniemo-tiny"
    if (bundled / "uniemo.json").is_file():
        return UniEmoPipeline.from_pretrained(bundled), "assets/uniemo-tiny (the bundled UniEmo-Tiny)"
    pipe = build_random_pipeline(EmoClassifierConfig.tiny(head_dropout=0.0), build_tiny_stable_diffusion(), 64, 32)
    pipe.save_pretrained(work_dir / "uniemo-tiny-random")
    return (UniEmoPipeline.from_pretrained(work_dir / "uniemo-tiny-random"),
            "random weights, geometry of the tiny_model_dir test fixture (assets/uniemo-tiny is absent)")


def demo_image(assets: Path, work_dir: Path) -> Path:
    """The first bundled example image, else a noise image written to ``work_dir``."""
    examples = sorted((assets / "examples").glob("*.png"))
    if examples:
        return examples[0]
    path = work_dir / "example.png"
    Image.effect_noise((128, 128), 64).convert("RGB").save(path)
    return path


def bench_demo(settings: BenchmarkSettings, assets: Path, work_dir: Path) -> dict[str, Any]:
    """classify against the bare classifier forward, generate against the stock SD pipeline.

    Args:
        settings: ``demo_steps`` (``None``: the model's default steps), ``demo_rounds`` (generate) and
            ``demo_classify_rounds`` (classify).
        assets: the folder holding ``uniemo-tiny/`` and ``examples/`` (the repository's ``assets/``).
        work_dir: a scratch folder.
    """
    pipe, source = demo_pipeline(assets, work_dir)
    image_path = demo_image(assets, work_dir)
    emotion = pipe.emotions[0]
    steps = settings.demo_steps or pipe.defaults["num_inference_steps"]
    n, guidance, size = DEMO_NUM_IMAGES, pipe.defaults["guidance_scale"], pipe.resolution
    pixel_values = pipe.transform(open_image(image_path)).unsqueeze(0)

    def bare_forward():
        with torch.no_grad():
            return pipe.classifier(pixel_values)

    def classify():
        return pipe.classify(str(image_path))

    def generate():
        return pipe.generate(emotion, num_images=n, seed=0, num_inference_steps=steps, guidance_scale=guidance,
                             size=size)

    def stock():
        generators = [torch.Generator().manual_seed(i) for i in range(n)]
        return pipe.sd(prompt=emotion, height=size, width=size, num_inference_steps=steps, guidance_scale=guidance,
                       num_images_per_prompt=n, generator=generators, output_type="pil").images

    understand = interleaved({"bare_classifier_forward": bare_forward, "classify": classify},
                             settings.demo_classify_rounds, settings.warmup)
    create = interleaved({"stock_sd": stock, "generate": generate}, settings.demo_rounds, settings.warmup)
    return {
        "model": source, "entry_points": "UniEmoPipeline.classify / generate (what the demo's handlers call)",
        "image": image_path.name,
        "generate_settings": {"emotion": emotion, "num_images": n, "steps": steps, "guidance_scale": guidance,
                              "size": size, "scheduler": type(pipe.sd.scheduler).__name__},
        "rounds": settings.demo_rounds, "classify_rounds": settings.demo_classify_rounds,
        "seconds": {k: summary(v) for k, v in {**understand, **create}.items()},
        "classify_ratio_vs_bare_forward": round(paired_ratio(understand, "classify", "bare_classifier_forward"),
                                                4),
        "generate_ratio_vs_stock_sd": round(paired_ratio(create, "generate", "stock_sd"), 4),
    }
