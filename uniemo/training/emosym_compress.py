"""EmoSym step 1, reasoning-knowledge compression: LoRA on the MLLM, the two token rows and both heads trained
with ``ce_weight · CE(cls_head(h_EMO), y) + nce_weight · InfoNCE(h_CTX, con_head(t))``, where t is the frozen text
embedding of the image's rationale (``uniemo.emosym.rationales``).

The InfoNCE's negatives are the other distinct rationales of each process's micro-batch (not gathered across
processes). The model is selected on the validation split's top-1 and written as an EmoSym model folder
(``uniemo.emosym.model_folder``) to ``<out_dir>/final``, with ``config.yaml`` and ``metrics.jsonl`` beside it.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from uniemo.clip import AttributeTextEncoder, load_clip
from uniemo.emosym.losses import rationale_info_nce
from uniemo.emosym.mllm import (EmoSymModel, LoraSettings, add_reasoning_tokens, apply_lora, limit_image_pixels,
                                load_mllm)
from uniemo.emosym.model_folder import load_emosym, save_emosym
from uniemo.emosym.rationales import RationaleBase, rationales_for, read_rationale_file
from uniemo.training.emosym_config import EmoSymCompressConfig
from uniemo.training.emosym_loop import emosym_datasets, train_emosym
from uniemo.training.run import start_run


def build_emosym(model_cfg, text_dim: int, step: str) -> EmoSymModel:
    """The model a step starts from: ``model.init``'s EmoSym folder (trainable), or the base MLLM with the two
    tokens added, LoRA applied and fresh heads. Its trainable parts are set for ``step``."""
    if model_cfg.init:
        model, _, _ = load_emosym(model_cfg.init, model_cfg.dtype, trainable=True)
    else:
        mllm, processor = load_mllm(model_cfg.mllm, model_cfg.dtype)
        if model_cfg.max_pixels is not None:
            limit_image_pixels(processor, model_cfg.max_pixels)
        ids = add_reasoning_tokens(processor, mllm)
        lora = LoraSettings(model_cfg.lora_r, model_cfg.lora_alpha, model_cfg.lora_dropout)
        model = EmoSymModel(apply_lora(mllm, ids, lora), processor, ids, text_dim)
    model.set_trainable(step)
    return model


def run_compress(cfg: EmoSymCompressConfig) -> dict:
    """Train step 1 and write ``<out_dir>/final``; returns the final figures."""
    cfg.validate()
    accelerator = start_run(cfg, cfg.out_dir, "emosym-compress")
    train_set, val_set, emotions = emosym_datasets(cfg.data)

    # the knowledge base: one sentence per training image, embedded once by the frozen text encoder
    file_sentences = read_rationale_file(cfg.rationales.file) if cfg.rationales.source == "file" else None
    sentences = rationales_for(train_set.entries, cfg.rationales.source, cfg.data.root, file_sentences)
    clip_model, clip_tokenizer = load_clip(cfg.model.text_encoder)
    base = RationaleBase.from_text_encoder(sentences, AttributeTextEncoder(clip_model, clip_tokenizer).embed)
    del clip_model
    row_of = {s: i for i, s in enumerate(base.sentences)}
    embeds = base.embeds.to(accelerator.device)

    def batch_loss(model, inputs, batch):
        rows = [sentences[i] for i in batch["index"].tolist()]
        targets = embeds[torch.tensor([row_of[s] for s in rows], device=embeds.device)]
        out = model(**inputs)
        ce = F.cross_entropy(out.logits.float(), batch["labels"].to(out.logits.device))
        projected = accelerator.unwrap_model(model).project_rationales(targets)
        nce = rationale_info_nce(out.ctx_hidden.float(), projected.float(), rows, cfg.temperature)
        return cfg.ce_weight * ce + cfg.nce_weight * nce, {"ce": ce, "nce": nce}

    info = {"mllm": cfg.model.mllm, "text_encoder": cfg.model.text_encoder, "emotions": list(emotions),
            "step": "compress", "dataset": cfg.data.dataset, "rationale_source": cfg.rationales.source}

    def save_best(core, top1, step):
        save_emosym(Path(cfg.out_dir) / "final", core, base, {**info, "best_val_top1": top1, "best_step": step})

    model = build_emosym(cfg.model, base.embeds.shape[1], "compress")
    return train_emosym(cfg, accelerator, model, train_set, val_set, "EmoSym step 1", batch_loss, save_best)
