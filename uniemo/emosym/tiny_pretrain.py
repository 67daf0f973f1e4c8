"""Pretraining of the tiny Qwen2-VL on EmoShapes captions, so that it can play the pretrained MLLM.

Each step shows a batch of training images with the question ``DESCRIBE`` and teaches the model the caption
("a balloon and a cake in a room") by next-token cross-entropy on the answer's tokens only (the chat turns and
the image tokens are masked with -100), through transformers' own loss (``labels=``). The whole model trains:
it starts from random weights. Saved as a transformers folder (model and processor), which
``uniemo.emosym.mllm``'s loaders read like a downloaded Qwen2-VL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from tqdm.auto import tqdm

from uniemo.data.base import load_image
from uniemo.emosym.mllm import SYSTEM
from uniemo.emosym.tiny_mllm import TinyMLLMConfig, build_tiny_processor, build_tiny_qwen2vl

DESCRIBE = "Describe the image."


@dataclass
class MLLMPretrainConfig:
    steps: int = 1200
    batch_size: int = 32
    lr: float = 1e-3
    warmup: int = 50


def caption_prompt(caption: str | None = None) -> str:
    """The captioning turn; with ``caption`` the answer and its end follow (training), without it the text
    stops where the answer starts (generation)."""
    text = (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n"
            f"<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>{DESCRIBE}<|im_end|>\n"
            "<|im_start|>assistant\n")
    return text if caption is None else f"{text}{caption}<|im_end|>"


def answer_labels(input_ids: torch.Tensor, attention_mask: torch.Tensor, answer_start_id: int) -> torch.Tensor:
    """-100 everywhere but the answer: the tokens after the last ``<|im_start|>assistant\\n`` header, padding
    excluded. ``answer_start_id`` is the id of ``<|im_start|>``; the header is that token and two more."""
    labels = torch.full_like(input_ids, -100)
    for row in range(input_ids.shape[0]):
        starts = (input_ids[row] == answer_start_id).nonzero().flatten()
        first = int(starts[-1]) + 3  # <|im_start|>, "assistant", "\n"
        keep = attention_mask[row].bool()
        keep[:first] = False
        labels[row][keep] = input_ids[row][keep]
    return labels


def pretrain_tiny_mllm(c: MLLMPretrainConfig, model_cfg: TinyMLLMConfig, seed: int, records: list[dict],
                       out_dir: Path, log, extra_texts: list[str] = ()) -> Path:
    """Train the tiny Qwen2-VL to caption ``records`` (``uniemo.training.tiny_pretrain.read_split``'s) and save
    it with its processor to ``out_dir``. The tokenizer is learnt from the captions and ``extra_texts``."""
    processor = build_tiny_processor([r["caption"] for r in records] + list(extra_texts), model_cfg)
    model = build_tiny_qwen2vl(processor, model_cfg, seed=seed)
    images = [load_image(r["path"]).resize((model_cfg.image_size,) * 2, Image.BICUBIC) for r in records]
    im_start = processor.tokenizer.convert_tokens_to_ids("<|im_start|>")
    opt = torch.optim.AdamW(model.parameters(), lr=c.lr, weight_decay=0.01)
    g = torch.Generator().manual_seed(seed)
    model.train()
    bar = tqdm(range(c.steps), desc="tiny Qwen2-VL")
    for step in bar:
        idx = torch.randint(len(records), (c.batch_size,), generator=g).tolist()
        batch = processor(images=[images[i] for i in idx], text=[caption_prompt(records[i]["caption"]) for i in idx],
                          return_tensors="pt", padding=True)
        labels = answer_labels(batch["input_ids"], batch["attention_mask"], im_start)
        loss = model(**batch, labels=labels).loss
        lr = c.lr * min(1.0, (step + 1) / c.warmup) * 0.5 * (1 + math.cos(math.pi * step / c.steps))
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0 or step == c.steps - 1:
            bar.set_postfix(loss=f"{loss.item():.3f}")
            log({"phase": "mllm", "step": step, "loss": loss.item()})
    model.eval()
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


@torch.no_grad()
def caption(model, processor, images: list[Image.Image], max_new_tokens: int = 24) -> list[str]:
    """Greedy captions (to check what the pretraining taught)."""
    batch = processor(images=[im.convert("RGB") for im in images], text=[caption_prompt()] * len(images),
                      return_tensors="pt", padding=True, padding_side="left")
    end = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=end,
                         pad_token_id=processor.tokenizer.pad_token_id)
    return [t.strip() for t in processor.batch_decode(out[:, batch["input_ids"].shape[1]:],
                                                      skip_special_tokens=True)]
