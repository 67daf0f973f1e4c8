"""What a stage-2 run leaves behind: the emotion space fitted over the training split, the validation grids it
draws on the way, and the model folder (loaded by ``UniEmoPipeline.from_pretrained``)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch
from PIL import Image, ImageDraw
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from uniemo.constants import PLACEHOLDER_TOKEN
from uniemo.data import collate_records
from uniemo.diffusion import encode_condition, encode_prompt, load_stable_diffusion
from uniemo.emotion_space import EmotionSpace
from uniemo.fusion import fuse_features
from uniemo.model_folder import MANIFEST, read_manifest, write_manifest
from uniemo.training.stage2 import classifier_view


@torch.no_grad()
def fit_emotion_space(classifier, dataset, accelerator, batch_size: int, num_workers: int, components: int = 1):
    """Encoder features over ``dataset`` (eval mode, eval transform), gathered over processes, fitted once
    (``components`` Gaussians per emotion; 1: the paper's emotion space)."""
    loader = accelerator.prepare(DataLoader(dataset, batch_size=batch_size, shuffle=False,
                                            num_workers=num_workers, collate_fn=collate_records))
    was_training = classifier.training
    classifier.eval()
    feats = {"cls": [], "scene": [], "object": []}
    labels = []
    for batch in tqdm(loader, desc="emotion space", disable=not accelerator.is_local_main_process):
        if batch is None:
            continue
        f = classifier.forward_features(batch["pixel_values"].to(accelerator.device))
        gathered = accelerator.gather_for_metrics(
            (f.cls_embed.float(), f.scene_embed.float(), f.object_embed.float(), batch["labels"]))
        for key, value in zip(("cls", "scene", "object"), gathered[:3]):
            feats[key].append(value.cpu())
        labels.append(gathered[3].cpu())
    classifier.train(was_training)
    return EmotionSpace.fit({k: torch.cat(v) for k, v in feats.items()}, torch.cat(labels),
                            tuple(classifier.config.emotions), components=components)


@torch.no_grad()
def validation_conditions(inner, dataset, attributes, device, per_emotion: int = 8):
    """One condition per emotion from the mean embeddings of a few val images (fixed, no sampling)."""
    emotions = inner.classifier.config.emotions
    chosen: dict[int, list[int]] = {e: [] for e in range(len(emotions))}
    for i, entry in enumerate(dataset.entries):
        if len(chosen[entry.label]) < per_emotion:
            chosen[entry.label].append(i)
    conditions = []
    was_training = inner.training
    inner.eval()
    for e, idx in chosen.items():
        if not idx:
            conditions.append(None)
            continue
        batch = collate_records([dataset[i] for i in idx])
        if batch is None:
            conditions.append(None)
            continue
        out = inner.classifier(classifier_view(batch["pixel_values"].to(device), inner.classifier.config))
        label = torch.full((1,), e, device=device)
        mean = type(out)(cls_embed=out.cls_embed.mean(0, keepdim=True),
                         scene_embed=out.scene_embed.mean(0, keepdim=True),
                         object_embed=out.object_embed.mean(0, keepdim=True))
        conditions.append(fuse_features(inner.classifier, inner.fusion, inner.correlation, mean, label))
    inner.train(was_training)
    return conditions


@torch.no_grad()
def log_validation(pipe, conditions, emotions, placeholder_id, cfg, path: Path) -> None:
    """A fixed-seed image per emotion (seed = emotion index), saved as one labelled strip."""
    tiles = []
    size = cfg.resolution
    for e, condition in enumerate(conditions):
        if condition is None:
            tiles.append(Image.new("RGB", (size, size)))
            continue
        dtype = pipe.unet.dtype
        prompt_embeds = encode_condition(pipe.text_encoder, pipe.tokenizer, condition.to(dtype), PLACEHOLDER_TOKEN,
                                         placeholder_id)
        negative = encode_prompt(pipe.text_encoder, pipe.tokenizer, [""])
        image = pipe(prompt_embeds=prompt_embeds, negative_prompt_embeds=negative, height=size, width=size,
                     num_inference_steps=cfg.validation_steps, guidance_scale=cfg.validation_guidance,
                     generator=torch.Generator().manual_seed(e)).images[0]
        tiles.append(image)
    label_h = 14
    grid = Image.new("RGB", (size * len(tiles), size + label_h), "white")
    draw = ImageDraw.Draw(grid)
    for i, (tile, name) in enumerate(zip(tiles, emotions)):
        grid.paste(tile, (i * size, label_h))
        draw.text((i * size + 2, 1), name, fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)


def write_model_folder(out: Path, inner, attributes, correlation, space, pipe, cfg) -> None:
    """The model folder (loaded by ``UniEmoPipeline.from_pretrained``), its ``uniemo.json`` and model card written
    by ``uniemo.model_folder.write_manifest``."""
    out.mkdir(parents=True, exist_ok=True)
    inner.classifier.save_pretrained(out / "classifier")
    inner.fusion.save_pretrained(out / "fusion")
    attributes.save(out)
    space.save(out)
    components = ["classifier", "fusion", "attributes", "emotion_space"]
    if correlation is not None:
        correlation.save(out)
        components.append("correlation")
    base = cfg.model.diffusion
    copy = cfg.model.copy_diffusion
    if copy is None:  # local bases are copied; a trained UNet is always written, whatever the base
        copy = Path(base).exists() or cfg.model.train_unet
    if copy:
        # write beside, then swap in: a half-written or concurrently replaced folder never stays behind
        staging = out / f".diffusion-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        # The frozen parts as the base has them (the training copies may have been cast to fp16 / bf16): a local
        # base is copied file for file, a Hub base written once in float32. The placeholder token is not
        # stored: from_pretrained adds it back the same way.
        if Path(base).exists():
            shutil.copytree(base, staging, ignore=shutil.ignore_patterns(".*"))
        else:
            load_stable_diffusion(base, torch_dtype=torch.float32).save_pretrained(staging, safe_serialization=True)
        if cfg.model.train_unet:  # the trained UNet, from its float32 master weights
            shutil.rmtree(staging / "unet")
            pipe.unet.save_pretrained(staging / "unet", safe_serialization=True)
        shutil.rmtree(out / "diffusion", ignore_errors=True)
        os.replace(staging, out / "diffusion")
        base = "diffusion/"
        components.append("diffusion")
    # the bases as given (a copied one is "diffusion/" above); the CLIP is the one the classifier came from, as
    # its folder records it (a stage-1 folder's "clip", or the "base_models" of a model folder continued from)
    stage1 = read_manifest(cfg.model.stage1, required=()) if (Path(cfg.model.stage1) / MANIFEST).is_file() else {}
    bases = {"clip": stage1.get("clip") or dict(stage1.get("base_models") or {}).get("clip"),
             "diffusion": cfg.model.diffusion}
    write_manifest(out, {
        "emotions": list(inner.classifier.config.emotions),
        "components": components,
        "diffusion": base,
        "placeholder_token": PLACEHOLDER_TOKEN,
        "resolution": cfg.resolution,
        "stage1": str(cfg.model.stage1),
        "dataset": cfg.data.dataset,
        "base_models": {k: str(v) for k, v in bases.items() if v},
    })
