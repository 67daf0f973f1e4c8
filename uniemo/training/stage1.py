"""Stage 1 (understanding) building blocks: the classifier from CLIP, its optimiser, its losses, prediction
and the stage-1 model folder. The loop itself is written out in ``train/understanding.py``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch


def build_classifier(cfg, emotions: tuple[str, ...]):
    """The classifier and the frozen CLIP (for the text tower), following ``cfg``.

    Returns:
        (classifier, clip_model, clip_tokenizer)
    """
    from uniemo.classifier import EmoClassifier, EmoClassifierConfig
    from uniemo.clip import build_tiny_clip, classifier_config_from_clip, init_from_clip, load_clip

    overrides = dict(cfg.overrides)
    if cfg.variant == "official":
        overrides = {**dict(interactive_layers=1, interactive_kv="cls_patch", use_beta=False,
                            learnable_proj=False), **overrides}
    overrides.setdefault("variant", cfg.variant)
    overrides.setdefault("emotions", tuple(emotions))
    try:
        if cfg.clip is None:
            arch = EmoClassifierConfig.from_preset(cfg.preset, **overrides)
            clip_model, tokenizer = build_tiny_clip(
                image_size=arch.image_size, patch_size=arch.patch_size, width=arch.width, layers=arch.layers,
                heads=arch.heads, proj_dim=arch.proj_dim,
            )
            clip_model.eval().requires_grad_(False)
        else:
            clip_model, tokenizer = load_clip(cfg.clip)
            overrides.setdefault("preset", cfg.preset)
            overrides.setdefault("proj_dim", clip_model.config.projection_dim)
            arch = classifier_config_from_clip(clip_model.config.vision_config, **overrides)
    except TypeError as e:  # an unknown override key
        valid = ", ".join(f.name for f in dataclasses.fields(EmoClassifierConfig))
        raise ValueError(f"bad model.overrides ({e}); valid keys: {valid}") from None
    if cfg.init_classifier:
        classifier = EmoClassifier.from_pretrained(cfg.init_classifier)
    else:
        classifier = EmoClassifier(arch)
        if cfg.clip is not None:
            init_from_clip(classifier, clip_model.vision_model)
    if cfg.freeze_backbone:
        for _, p in classifier.parameter_groups()["backbone"]:
            p.requires_grad_(False)
    return classifier, clip_model, tokenizer


def build_optimizer(classifier, optim) -> torch.optim.AdamW:
    """AdamW over the trainable parameters, one group per (module group, decay / no decay)."""
    lrs = {"backbone": optim.lr_backbone, "queries": optim.lr_queries,
           "projections": optim.lr_projections, "head": optim.lr_head}
    groups = []
    for group, named in classifier.parameter_groups().items():
        decay = [p for n, p in named if p.requires_grad and p.ndim >= 2]
        no_decay = [p for n, p in named if p.requires_grad and p.ndim < 2]
        for params, wd in ((decay, optim.weight_decay), (no_decay, 0.0)):
            if params:
                groups.append({"params": params, "lr": lrs[group], "weight_decay": wd, "name": group})
    return torch.optim.AdamW(groups, betas=tuple(optim.betas))


def understanding_losses(model, batch, targets, loss_cfg, generator, device):
    """The stage-1 loss terms as zero-argument callables (so weight-0 terms are never computed)."""
    from uniemo.losses import emotion_ce_loss, expert_contrastive_loss

    out = model(batch["pixel_values"].to(device))
    labels = batch["labels"].to(device)
    scene_ids, object_ids, scene_text, object_text = targets.batch(
        batch["scene"], batch["objects"], generator, device, dummy=loss_cfg.released_masking)
    unwrapped = getattr(model, "module", model)
    projected: dict = {}

    def project():
        if not projected:
            projected["s"], projected["o"] = unwrapped.project_queries(out)
        return projected["s"], projected["o"]

    terms = {
        "emotion": lambda: emotion_ce_loss(out.logits, labels),
        "scene": lambda: expert_contrastive_loss(project()[0], scene_text.to(out.logits.dtype), scene_ids,
                                                 loss_cfg.temperature, loss_cfg.symmetric,
                                                 released_masking=loss_cfg.released_masking),
        "object": lambda: expert_contrastive_loss(project()[1], object_text.to(out.logits.dtype), object_ids,
                                                  loss_cfg.temperature, loss_cfg.symmetric,
                                                  released_masking=loss_cfg.released_masking),
    }
    return out, terms


@torch.no_grad()
def predict(model, loader, accelerator) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels over a (prepared) loader, gathered across processes."""
    model.eval()
    all_logits, all_labels = [], []
    for batch in loader:
        if batch is None:
            continue
        with accelerator.autocast():
            logits = model(batch["pixel_values"]).logits.float()
        logits, labels = accelerator.gather_for_metrics((logits, batch["labels"]))
        all_logits.append(logits.cpu())
        all_labels.append(labels.cpu())
    model.train()
    if not all_logits:
        return torch.zeros(0, 0), torch.zeros(0, dtype=torch.long)
    return torch.cat(all_logits), torch.cat(all_labels)


def write_model_folder(out: Path, classifier, extra: dict, attributes) -> None:
    """The stage-1 model folder: ``classifier/``, the attribute base, ``uniemo.json`` and the model card
    (``uniemo.model_folder.write_manifest``)."""
    from uniemo.model_folder import write_manifest

    out.mkdir(parents=True, exist_ok=True)
    classifier.save_pretrained(out / "classifier")
    attributes.save(out)
    write_manifest(out, {"stage": "understanding", "emotions": list(classifier.config.emotions),
                         "components": ["classifier"], **extra})
