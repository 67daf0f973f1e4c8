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
    and keeps parameter gradients that no optimizer reads), against ours at the same batch and precision;
(d) EmoSym: step 1's training (``train/emosym_compress.py``: LoRA r 64 / alpha 128 and the two token rows on
    Qwen2-VL-2B-Instruct's geometry in bf16, 0.5 CE + 0.5 InfoNCE, AdamW) on 448-px images at batch 1 and 8:
    seconds per step, images per second and peak memory (``uniemo.gpu_check.emosym``), after the UniEmo models
    are freed.

Everything goes to ``--out`` (JSON): the device, library versions, geometry, each configuration's numbers and
the ratios (batch 8 over batch 1 per image, checkpointing over none, bf16 over fp16, official over ours,
UniEmo over the stock pipeline). Timings are CUDA-synchronised; the first configuration also pays the kernels'
first-use costs, which the warm-up steps absorb. The defaults are sized to finish within a few minutes on one
H100 (an estimate: ``elapsed_s`` in the JSON says what a run took).

Without CUDA it refuses (exit status 2) unless ``--cpu-smoke`` is given: the same code at tiny geometry (the
"tiny" classifier preset, ``build_tiny_stable_diffusion``, its 32 px, one step each) on the CPU, for tests.
There peak memory is the process's peak resident set (VmHWM, reset through /proc/self/clear_refs). The
measurements live in ``uniemo.gpu_check``; this script parses the command and writes the JSON.

    python eval/gpu_check.py --out runs/gpu_check.json
    python eval/gpu_check.py --cpu-smoke --out /tmp/gpu_check.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


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
    # torch and the library load only now: --help answers at once
    import torch

    from uniemo.gpu_check.emosym import EmoSymCheckSettings, run_emosym
    from uniemo.gpu_check.generation import run_generation
    from uniemo.gpu_check.measure import Device, environment, log
    from uniemo.gpu_check.models import GpuCheckSettings, build_models, geometry
    from uniemo.gpu_check.training import run_training

    if args.cpu_smoke:
        settings, device_name = GpuCheckSettings.smoke(), "cpu"
    else:
        if not torch.cuda.is_available():
            log("eval/gpu_check.py: no CUDA GPU is available (torch.cuda.is_available() is False); this check "
                "measures real-size models on a GPU. Run it on a CUDA machine, or pass --cpu-smoke to exercise "
                "the same code at tiny geometry on the CPU.")
            raise SystemExit(2)
        if not args.device.startswith("cuda"):
            raise ValueError(f"--device must be a CUDA device (cuda, cuda:N), got {args.device!r}; for the CPU "
                             "use --cpu-smoke")
        settings, device_name = GpuCheckSettings(), args.device
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
            "emosym": "EmoSym step 1 on Qwen2-VL-2B's geometry (bf16, LoRA r 64): s_per_step median of the timed "
                      "steps per batch size, peak_bytes over its steps",
        },
    }
    log(f"building the models ({'tiny' if args.cpu_smoke else 'SD 1.5 + ViT-L/14'} geometry, random weights)")
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
        del parts
        device.clear()
        t = time.perf_counter()
        emosym_settings = EmoSymCheckSettings.smoke() if args.cpu_smoke else EmoSymCheckSettings()
        results["emosym"] = run_emosym(emosym_settings, device, args.cpu_smoke, args.seed)
        elapsed["emosym"] = round(time.perf_counter() - t, 1)
    elapsed["total"] = round(time.perf_counter() - start, 1)
    results["elapsed_s"] = elapsed
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    log(f"wrote {out} ({elapsed['total']} s)")
    return results


if __name__ == "__main__":
    main()
