"""The GPU check's EmoSym row: step 1 (reasoning-knowledge compression) at Qwen2-VL-2B-Instruct's geometry.

The MLLM is built with random weights in bf16 (``uniemo.real_geometry.build_qwen2vl_2b``), wrapped with EmoSym's
LoRA (r 64, alpha 128) and the two token rows, and trained as ``train/emosym_compress.py`` does: 0.5 CE on
``[EMO]`` + 0.5 InfoNCE between ``[CTX]`` and projected rationale embeddings (random, CLIP ViT-L/14's width 768),
AdamW on the trained parts, gradient clipping, bf16 autocast. Images are ``image_size`` px squared (448: 32 x 32
patches of 14 px, merged into 256 image tokens); the prompt is EmoSym's chat turn written with Qwen2-VL's special
token ids. Seconds per step, images per second and peak memory per batch size, after untimed warm-up steps.
The smoke run does the same with the tiny Qwen2-VL (``uniemo.emosym.tiny_mllm``) at 64 px on the CPU.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

import torch
from transformers import Qwen2VLImageProcessor

from uniemo.emosym.losses import rationale_info_nce
from uniemo.emosym.mllm import EmoSymModel, LoraSettings, add_reasoning_tokens, apply_lora
from uniemo.emosym.tiny_mllm import TinyMLLMConfig, build_tiny_processor, build_tiny_qwen2vl
from uniemo.gpu_check.measure import Device, log
from uniemo.real_geometry import QWEN2VL_TOKEN_IDS, QWEN2VL_TOKENIZER_SIZE, build_qwen2vl_2b

TEXT_DIM = 768  # CLIP ViT-L/14's text projection: the rationale embeddings' width


@dataclass
class EmoSymCheckSettings:
    batches: tuple[int, ...] = (1, 8)
    image_size: int = 448
    warmup: int = 2
    steps: int = 3
    lora_r: int = 64
    lora_alpha: int = 128

    @classmethod
    def smoke(cls) -> EmoSymCheckSettings:
        return cls(batches=(1, 2), image_size=64, warmup=0, steps=1, lora_r=4, lora_alpha=8)


def _build(smoke: bool, settings: EmoSymCheckSettings, seed: int):
    """(mllm, special token ids, [EMO] id, [CTX] id, patch size, merge size)."""
    if smoke:
        cfg = TinyMLLMConfig(image_size=settings.image_size)
        processor = build_tiny_processor(["a skull in a cemetery"], cfg)
        mllm = build_tiny_qwen2vl(processor, cfg, seed=seed)
        emo, ctx = add_reasoning_tokens(processor, mllm)
        names = ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>"]
        special = dict(zip(names, processor.tokenizer.convert_tokens_to_ids(names)))
        return mllm, special, emo, ctx, cfg.patch_size, cfg.merge_size
    mllm = build_qwen2vl_2b(seed=seed)
    return mllm, QWEN2VL_TOKEN_IDS, QWEN2VL_TOKENIZER_SIZE, QWEN2VL_TOKENIZER_SIZE + 1, 14, 2


def _inputs(batch: int, special: dict, emo: int, ctx: int, size: int, patch: int, merge: int, dtype, device):
    """A batch of random images with EmoSym's prompt shape: system and user turns around the image tokens, the
    assistant turn ``[CTX][EMO]``; filler text ids stand for the words."""
    processor = Qwen2VLImageProcessor(patch_size=patch, merge_size=merge, min_pixels=size * size,
                                      max_pixels=size * size)
    g = torch.Generator().manual_seed(batch)
    pixels = processor(images=list(torch.rand(batch, 3, size, size, generator=g)), return_tensors="pt",
                       do_rescale=False)
    image_tokens = int(pixels["image_grid_thw"][0].prod()) // (merge * merge)
    words = list(range(10, 40))  # ~ the system turn and the question
    row = [special["<|im_start|>"], *words[:8], special["<|im_end|>"], special["<|im_start|>"],
           special["<|vision_start|>"], *[special["<|image_pad|>"]] * image_tokens, special["<|vision_end|>"],
           *words[8:], special["<|im_end|>"], special["<|im_start|>"], 41, 42, ctx, emo]
    input_ids = torch.tensor([row] * batch)
    return {"input_ids": input_ids.to(device), "attention_mask": torch.ones_like(input_ids).to(device),
            "pixel_values": pixels["pixel_values"].to(device, dtype), "image_grid_thw": pixels["image_grid_thw"]
            .to(device), "mm_token_type_ids": (input_ids == special["<|image_pad|>"]).long().to(device)}, \
        image_tokens


def run_emosym(settings: EmoSymCheckSettings, device: Device, smoke: bool, seed: int = 0) -> dict[str, Any]:
    """Step-1 training steps at each batch size; the model, its trainable parameters and each configuration's
    numbers."""
    dtype = torch.float32 if smoke else torch.bfloat16
    mllm, special, emo, ctx, patch, merge = _build(smoke, settings, seed)
    if not smoke:
        mllm.to(dtype)
    model = EmoSymModel(apply_lora(mllm, (emo, ctx), LoraSettings(settings.lora_r, settings.lora_alpha, 0.05)),
                        None, (emo, ctx), TEXT_DIM).to(device.device)
    trained = model.set_trainable("compress")
    result: dict[str, Any] = {
        "mllm": "tiny Qwen2-VL" if smoke else "Qwen2-VL-2B-Instruct geometry",
        "parameters": sum(p.numel() for p in model.mllm.parameters()),
        "trainable_parameters": sum(p.numel() for p in trained), "image_size": settings.image_size,
        "lora": {"r": settings.lora_r, "alpha": settings.lora_alpha}, "configs": []}
    for batch in settings.batches:
        inputs, image_tokens = _inputs(batch, special, emo, ctx, settings.image_size, patch, merge, dtype,
                                       device.device)
        labels = (torch.arange(batch) % 8).to(device.device)
        rationales = [f"r{i % 3}" for i in range(batch)]
        text = torch.randn(batch, TEXT_DIM, generator=torch.Generator().manual_seed(seed)).to(device.device)
        optimizer = torch.optim.AdamW(trained, lr=1e-4)
        device.clear()
        resident = device.allocated()

        def step():
            with torch.autocast(device.device.type, dtype=torch.bfloat16, enabled=not smoke):
                out = model(**inputs)
                ce = torch.nn.functional.cross_entropy(out.logits.float(), labels)
                nce = rationale_info_nce(out.ctx_hidden.float(), model.project_rationales(text).float(), rationales)
                loss = 0.5 * ce + 0.5 * nce
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trained, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            return float(loss.detach())

        seconds, losses = [], []
        for _ in range(settings.warmup + settings.steps):
            s, loss = device.timed(step)
            seconds.append(s)
            losses.append(loss)
        per_step = statistics.median(seconds[settings.warmup:])
        config = {"batch": batch, "image_tokens": image_tokens, "sequence_length": inputs["input_ids"].shape[1],
                  "s_per_step": round(per_step, 6), "images_per_s": round(batch / per_step, 4),
                  "peak_bytes": device.peak(), "resident_before_bytes": resident,
                  "losses": [round(v, 6) for v in losses], "losses_finite": all(math.isfinite(v) for v in losses)}
        log(f"EmoSym step 1, batch {batch}: {config['s_per_step']} s/step")
        result["configs"].append(config)
        del optimizer
    return result
