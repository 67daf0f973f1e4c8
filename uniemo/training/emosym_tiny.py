"""EmoSym-Tiny from a UniEmo-Tiny build's world, on a CPU: the tiny Qwen2-VL pretrained on EmoShapes captions,
then EmoSym's three steps through the same runs a GPU user launches (``run_compress``, ``run_reward``,
``run_generate``, each from its ``tiny`` preset), then the bundle: step 3's folder with the MLLM beside it
(``mllm/``) and Stable Diffusion copied in or shared (``diffusion_path``). Each step's figures go to
``<work_dir>/build.json`` and the bundle's ``build.json``.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict
from pathlib import Path

from uniemo.config import build_config
from uniemo.emosym.model_folder import DESCRIPTOR
from uniemo.emosym.rationales import CELL_MEANING
from uniemo.emosym.tiny_mllm import TinyMLLMConfig
from uniemo.emosym.tiny_pretrain import MLLMPretrainConfig, pretrain_tiny_mllm
from uniemo.training.emosym_compress import run_compress
from uniemo.training.emosym_config import (EmoSymCompressConfig, EmoSymGenerateConfig, EmoSymRewardConfig,
                                           EmoSymTinyConfig)
from uniemo.training.emosym_generate import run_generate
from uniemo.training.emosym_reward import run_reward
from uniemo.training.tiny_pretrain import read_split

PRESETS = Path(__file__).resolve().parents[2] / "train" / "configs"
SMOKE = {"mllm_steps": 20, "compress_epochs": 1, "reward_epochs": 1, "generate_epochs": 1, "batch_size": 16}


def build_emosym_tiny(cfg: EmoSymTinyConfig) -> dict:
    """Every step in order; returns the build summary (also ``build.json``)."""
    world, work, out = Path(cfg.world), Path(cfg.work_dir), Path(cfg.out)
    for part in ("emoshapes", "clip", "sd"):
        if not (world / part).is_dir():
            raise FileNotFoundError(f"{world / part} is missing: world= must be a UniEmo-Tiny build's work folder "
                                    "(python -m train.tiny_world ... work_dir=DIR)")
    work.mkdir(parents=True, exist_ok=True)
    data, clip, sd = world / "emoshapes", world / "clip", world / "sd"
    timings, started = {}, time.time()
    log_path = work / "mllm_pretrain.jsonl"

    def log(record):
        with log_path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    t = time.time()
    records = read_split(data, "train")
    sentences = [f"{k[0]} {k[1]}: {v}" for k, v in CELL_MEANING.items()]  # the rationales' words, for the BPE
    pretrain_tiny_mllm(MLLMPretrainConfig(steps=cfg.mllm_steps, batch_size=cfg.mllm_batch_size, lr=cfg.mllm_lr),
                       TinyMLLMConfig(), cfg.seed, records, work / "mllm", log, extra_texts=sentences)
    timings["mllm"] = round(time.time() - t, 1)

    common = {"data": {"root": str(data)}, "seed": cfg.seed, "batch_size": cfg.batch_size}
    t = time.time()
    compress = run_compress(build_config(EmoSymCompressConfig, [PRESETS / "emosym_compress_tiny.yaml"], {
        **common, "model": {"mllm": str(work / "mllm"), "text_encoder": str(clip), "lora_r": cfg.lora_r,
                            "lora_alpha": 2 * cfg.lora_r},
        "epochs": cfg.compress_epochs, "lr": cfg.compress_lr, "out_dir": str(work / "compress")}))
    timings["compress"] = round(time.time() - t, 1)
    t = time.time()
    reward = run_reward(build_config(EmoSymRewardConfig, [PRESETS / "emosym_reward_tiny.yaml"], {
        **common, "model": {"init": str(work / "compress" / "final")}, "epochs": cfg.reward_epochs,
        "lr": cfg.reward_lr, "out_dir": str(work / "reward")}))
    timings["reward"] = round(time.time() - t, 1)
    t = time.time()
    generate = run_generate(build_config(EmoSymGenerateConfig, [PRESETS / "emosym_generate_tiny.yaml"], {
        **common, "model": {"init": str(work / "reward" / "final")}, "diffusion": str(sd),
        "resolution": cfg.resolution, "epochs": cfg.generate_epochs, "out_dir": str(work / "generate")}))
    timings["generate"] = round(time.time() - t, 1)

    # the bundle: step 3's folder, the MLLM inside, SD copied or shared
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(work / "generate" / "final", out)
    shutil.copytree(work / "mllm", out / "mllm")
    info = json.loads((out / DESCRIPTOR).read_text())
    info["mllm"] = "mllm"
    if cfg.diffusion_path is None:
        shutil.copytree(sd, out / "diffusion")
        info["diffusion"] = "diffusion"
    else:
        if not (out / cfg.diffusion_path).is_dir():
            raise FileNotFoundError(f"diffusion_path {cfg.diffusion_path!r} is not a folder beside {out}")
        info["diffusion"] = cfg.diffusion_path
    info["text_encoder"] = "the tiny CLIP of UniEmo-Tiny (clip/), pretrained on EmoShapes captions"
    info["builder"] = "train/emosym_tiny.py"
    (out / DESCRIPTOR).write_text(json.dumps(info, indent=2) + "\n")
    summary = {"config": asdict(cfg), "compress": compress, "reward": reward, "generate": generate,
               "timings_seconds": timings, "total_seconds": round(time.time() - started, 1)}
    for path in (work / "build.json", out / "build.json"):
        path.write_text(json.dumps(summary, indent=2) + "\n")
    return summary
