"""EmoSym-Tiny from a UniEmo-Tiny build's world, on a CPU: the tiny Qwen2-VL pretrained on EmoShapes captions,
then EmoSym's three steps through the same runs a GPU user launches (``run_compress``, ``run_reward``,
``run_generate``, each from its ``tiny`` preset), then the bundle: step 3's folder with the MLLM beside it
(``mllm/``) and Stable Diffusion copied in or shared (``diffusion_path``); then steps 1-2 again for each other
seed of ``reward_effect_seeds``, for the reward step's effect (test top-1 before and after step 2, the mean and
std over the seeds). Each step's figures go to ``<work_dir>/build.json`` and the bundle's ``build.json``.
"""

from __future__ import annotations

import json
import shutil
import statistics
import time
from dataclasses import asdict
from pathlib import Path

from uniemo.config import build_config
from uniemo.data.emoshapes.rule import OBJECTS
from uniemo.emosym.accuracy import emosym_accuracy
from uniemo.emosym.model_folder import load_emosym, load_generation_parts, save_emosym
from uniemo.emosym.rationales import CELL_MEANING
from uniemo.emosym.tiny_mllm import TinyMLLMConfig
from uniemo.emosym.tiny_pretrain import MLLMPretrainConfig, pretrain_tiny_mllm
from uniemo.training.emosym_compress import run_compress
from uniemo.training.emosym_config import (EmoSymCompressConfig, EmoSymGenerateConfig, EmoSymRewardConfig,
                                           EmoSymTinyConfig)
from uniemo.training.emosym_generate import run_generate
from uniemo.training.emosym_reward import run_reward
from uniemo.training.tiny_pretrain import read_split
from uniemo.training.tiny_world_config import TINY_SAMPLER

PRESETS = Path(__file__).resolve().parents[2] / "train" / "configs"
CARD_DESCRIPTION = (
    "EmoSym trained from nothing on a CPU in EmoShapes, the synthetic world of this repository (64-px scenes with "
    "objects whose emotion is a fixed rule of the scene and the main object). A tiny Qwen2-VL (the real "
    "architecture, 2 + 2 layers), pretrained on EmoShapes captions, plays the multimodal LLM; rationales written from "
    "the world's rule (\"a skull in a cemetery: ...\") play the reasoning knowledge base, their text embeddings "
    "from UniEmo-Tiny's tiny CLIP. Steps 1 (compression: LoRA and the [EMO] / [CTX] tokens, 0.5 CE + 0.5 "
    "InfoNCE), 2 (verifiable reward against a frozen copy) and 3 (two mappers drive Stable Diffusion through the "
    "placeholder token) ran through the same recipes a GPU user runs. Its Stable Diffusion is UniEmo-Tiny's "
    "(`diffusion` points at it), so the bundle is a few MB. Built by `python -m train.emosym_tiny`; measured beside "
    "UniEmo-Tiny by `eval/emosym_report.py` (`report.json`; the repository README's table). It knows only "
    "EmoShapes.")
SMOKE = {"mllm_steps": 20, "compress_epochs": 1, "reward_epochs": 1, "generate_epochs": 1, "batch_size": 16,
         "reward_effect_seeds": (0, 1)}


def build_emosym_tiny(cfg: EmoSymTinyConfig) -> dict:
    """Every step in order; returns the build summary (also ``build.json``)."""
    world, work, out = Path(cfg.world), Path(cfg.work_dir), Path(cfg.out)
    for part in ("emoshapes", "clip", "sd"):
        if not (world / part).is_dir():
            raise FileNotFoundError(f"{world / part} is missing: world= must be a UniEmo-Tiny build's work folder "
                                    "(python -m train.tiny_world ... work_dir=DIR)")
    data, clip, sd = world / "emoshapes", world / "clip", world / "sd"
    if cfg.diffusion_path is not None:
        # step 3 learns its mappers against the very SD the bundle will point at (UniEmo-Tiny's, whose UNet its
        # joint stage fine-tuned), not the world's pretrained one
        sd = (out / cfg.diffusion_path).resolve()
        if sd.is_relative_to(out.resolve()):
            raise ValueError(f"diffusion_path {cfg.diffusion_path!r} lies inside the bundle, which the build "
                             "replaces: point it at a folder beside the bundle, or leave it null to copy the SD in")
        if not (sd / "model_index.json").is_file():
            raise FileNotFoundError(f"diffusion_path {cfg.diffusion_path!r}: {sd} is not a diffusers folder "
                                    f"beside {out}; build UniEmo-Tiny first, or leave diffusion_path null to copy "
                                    f"{world / 'sd'} into the bundle")
    work.mkdir(parents=True, exist_ok=True)
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

    t = time.time()
    compress, reward = steps_one_and_two(cfg, cfg.seed, work, work / "mllm", data, clip)
    timings["compress_and_reward"] = round(time.time() - t, 1)
    effect = [{"seed": cfg.seed, "before": compress["test_top1"], "after": reward["test_top1"]}]
    common = {"data": {"root": str(data)}, "seed": cfg.seed, "batch_size": cfg.batch_size}
    t = time.time()
    generate = run_generate(build_config(EmoSymGenerateConfig, [PRESETS / "emosym_generate_tiny.yaml"], {
        **common, "model": {"init": str(work / "reward" / "final")}, "diffusion": str(sd),
        "resolution": cfg.resolution, "epochs": cfg.generate_epochs, "out_dir": str(work / "generate")}))
    timings["generate"] = round(time.time() - t, 1)

    # the bundle: step 3's folder written again by the folder's own writer, with the MLLM inside and SD copied
    # in or shared
    if out.exists():
        shutil.rmtree(out)
    model, base, info = load_emosym(work / "generate" / "final")
    mappers, space = load_generation_parts(work / "generate" / "final")
    shutil.copytree(work / "mllm", out / "mllm")
    info["mllm"] = "mllm"
    if cfg.diffusion_path is None:
        shutil.copytree(sd, out / "diffusion")
        info["diffusion"] = "diffusion"
    else:
        info["diffusion"] = cfg.diffusion_path
    info["text_encoder"] = "the tiny CLIP of UniEmo-Tiny (clip/), pretrained on EmoShapes captions"
    info["builder"] = "train/emosym_tiny.py"
    # UniEmo-Tiny's recommended sampling (same SD, same seeds: the two bundles compare like for like) and the
    # 16 objects the tiny SD knows, for the demo's Transfer tab
    info["sampler"] = dict(TINY_SAMPLER)
    info["transfer_nouns"] = sorted(OBJECTS)
    info.update(title="EmoSym-Tiny", description=CARD_DESCRIPTION)
    save_emosym(out, model, base, info, mappers, space)
    t = time.time()
    for seed in cfg.reward_effect_seeds:  # the reward step's effect over more seeds: steps 1-2 again
        if seed != cfg.seed:
            c, r = steps_one_and_two(cfg, seed, work / f"seed{seed}", work / "mllm", data, clip)
            effect.append({"seed": seed, "before": c["test_top1"], "after": r["test_top1"]})
    if len(effect) > 1:
        timings["reward_effect_seeds"] = round(time.time() - t, 1)
    summary = {"config": asdict(cfg), "compress": compress, "reward": reward, "generate": generate,
               "reward_effect": reward_effect(effect), "timings_seconds": timings,
               "total_seconds": round(time.time() - started, 1)}
    for path in (work / "build.json", out / "build.json"):
        path.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def steps_one_and_two(cfg: EmoSymTinyConfig, seed: int, work: Path, mllm: Path, data: Path, clip: Path
                      ) -> tuple[dict, dict]:
    """Step 1 then step 2 from the pretrained ``mllm`` with ``seed`` into ``work/compress`` and
    ``work/reward``; each summary gains ``test_top1`` (the test split, a split neither step selects on)."""
    common = {"data": {"root": str(data)}, "seed": seed, "batch_size": cfg.batch_size}
    compress = run_compress(build_config(EmoSymCompressConfig, [PRESETS / "emosym_compress_tiny.yaml"], {
        **common, "model": {"mllm": str(mllm), "text_encoder": str(clip), "lora_r": cfg.lora_r,
                            "lora_alpha": 2 * cfg.lora_r},
        "epochs": cfg.compress_epochs, "lr": cfg.compress_lr, "out_dir": str(work / "compress")}))
    compress["test_top1"] = emosym_accuracy(work / "compress" / "final", "emoshapes", data)["top1"]
    reward = run_reward(build_config(EmoSymRewardConfig, [PRESETS / "emosym_reward_tiny.yaml"], {
        **common, "model": {"init": str(work / "compress" / "final")}, "epochs": cfg.reward_epochs,
        "lr": cfg.reward_lr, "out_dir": str(work / "reward")}))
    reward["test_top1"] = emosym_accuracy(work / "reward" / "final", "emoshapes", data)["top1"]
    return compress, reward


def reward_effect(runs: list[dict]) -> dict:
    """Per seed, test top-1 before (step 1) and after (step 2), and the mean and sample std of before, after
    and their difference (std null with one seed)."""
    summary = {"runs": runs, "seeds": [r["seed"] for r in runs]}
    for key, values in (("before", [r["before"] for r in runs]), ("after", [r["after"] for r in runs]),
                        ("difference", [r["after"] - r["before"] for r in runs])):
        summary[key] = {"mean": statistics.fmean(values),
                        "std": statistics.stdev(values) if len(values) > 1 else None}
    return summary
