"""Sizes, repeat counts and targets of the benchmark (no torch import: eval/benchmark.py reads them at once)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TOLERANCE_UNDERSTANDING = 0.15  # measured / ideal ratio may differ from 1 by this much
MAX_GENERATION_RATIO = 1.05  # UniEmo generate vs the stock pipeline
FROZEN_GROUPS = ("unet", "vae", "text_encoder", "clip_backbone", "emotion_head")


@dataclass
class BenchmarkSettings:
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
    demo_steps: int | None = None  # None: the model's default steps (what the demo starts with for UniEmo-Tiny)
    demo_rounds: int = 5  # generate against the stock pipeline (seconds a call)
    demo_classify_rounds: int = 25  # classify against the bare forward (milliseconds a call: cheap rounds)
    warmup: int = 1
    # eval/generate.py on 1 and 2 processes (subprocesses on the bundled UniEmo-Tiny)
    processes_emotions: int | None = None  # the model's first N emotions (None: all 8)
    processes_per_emotion: int = 4
    processes_steps: int = 10
    processes_batch_size: int = 4
    processes_rounds: int = 3
    processes_warmup: int = 1  # untimed runs of every contender first (file cache, compiled kernels)
    processes_timeout_s: float = 900.0  # one run

    @classmethod
    def full(cls) -> BenchmarkSettings:
        return cls()

    @classmethod
    def quick(cls) -> BenchmarkSettings:
        """Small sizes and few repeats: the same code paths in well under a minute."""
        return cls(
            classifier=dict(image_size=64, patch_size=16, width=64, layers=6, heads=2, proj_dim=32,
                            num_scene_queries=4, num_object_queries=4, head_hidden=64),
            understanding_batches=(1, 4), understanding_rounds=(3, 3), breakdown_batch=2, breakdown_repeats=1,
            sd=dict(image_size=32), generation_steps=2, generation_rounds=3,
            train_classifier={}, train_sd={}, train_fusion_hidden=64, train_batches=(1, 4), train_rounds=3,
            demo_steps=2, demo_rounds=3, demo_classify_rounds=3,
            processes_emotions=2, processes_per_emotion=2, processes_steps=2, processes_batch_size=1,
            processes_rounds=1, processes_warmup=0,
        )
