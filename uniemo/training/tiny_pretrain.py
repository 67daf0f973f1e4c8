"""Pretraining of UniEmo-Tiny's own CLIP and Stable Diffusion on EmoShapes, and the helpers around it (reading
a split, pixels, augmentation, the short texts, zero-shot accuracy, the sample sheet). The build itself is
written out in ``train/tiny_world.py``."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, StableDiffusionPipeline
from PIL import Image
from tqdm.auto import tqdm
from transformers import CLIPModel, CLIPTokenizer

from uniemo.clip import build_tiny_clip
from uniemo.constants import CLIP_MEAN, CLIP_STD
from uniemo.data.emoshapes import with_article as _with_article
from uniemo.data.images import open_image
from uniemo.diffusion import TinySDConfig, build_tiny_stable_diffusion, load_stable_diffusion
from uniemo.training.tiny_world_config import ClipPretrainConfig, SDPretrainConfig

logger = logging.getLogger("uniemo.training.tiny_pretrain")


def read_split(root: Path, split: str) -> list[dict]:
    """EmoShapes records: image path, emotion, scene, objects, caption (from the EmoSet-layout files)."""
    entries = json.loads((root / f"{split}.json").read_text())
    records = []
    for emotion, image_path, annotation_path in entries:
        ann = json.loads((root / annotation_path).read_text())
        records.append({"path": str(root / image_path), "emotion": emotion, "scene": ann.get("scene"),
                        "objects": ann.get("object", []), "caption": ann["caption"]})
    return records


def load_pixels(records: list[dict], size: int) -> torch.Tensor:
    """All images resized to ``size`` as a uint8 tensor (N, 3, size, size): the tiny world fits in memory."""
    out = torch.empty(len(records), 3, size, size, dtype=torch.uint8)
    for i, r in enumerate(records):
        im = open_image(r["path"]).resize((size, size), Image.BICUBIC)
        out[i] = torch.from_numpy(__import__("numpy").asarray(im).copy()).permute(2, 0, 1)
    return out


def augment(batch_u8: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random horizontal flip + small translation on a uint8 batch -> float in [0, 1]."""
    x = batch_u8.float() / 255.0
    flip = torch.rand(len(x), generator=generator) < 0.5
    x[flip] = x[flip].flip(-1)
    pad = max(1, x.shape[-1] // 16)
    x = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    dx, dy = (int(v) for v in torch.randint(0, 2 * pad + 1, (2,), generator=generator))
    return x[..., dy:dy + batch_u8.shape[-2], dx:dx + batch_u8.shape[-1]]


def cosine_lr(step: int, total: int, base: float, warmup: int = 100) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    return base * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


TEXT_KINDS = ("caption", "a_object", "object", "scene")


def caption_variant(record: dict, kind: str, which: int = 0) -> str:
    """One text for ``record`` of the given kind: its full caption ("a balloon and a cake in a room"), one of its
    objects with an article ("a balloon") or bare ("balloon", object number ``which``), or its scene ("room").

    Captions alone would leave the bare names, which stage 1 embeds as attribute texts and transfer/neutral
    use as prompts, out of the towers' distribution; the short kinds put them in.
    """
    if kind == "caption":
        return record["caption"]
    if kind == "scene":
        return record["scene"].replace("_", " ")
    noun = record["objects"][which % len(record["objects"])].replace("_", " ")
    if kind == "a_object":
        return _with_article(noun)
    if kind == "object":
        return noun
    raise ValueError(f"unknown text kind {kind!r}; expected one of {', '.join(TEXT_KINDS)}")


def sample_texts(records: list[dict], idx: torch.Tensor, mix, generator: torch.Generator) -> list[tuple[str, str]]:
    """(kind, text) for each record in ``idx``, the kind drawn with probabilities ``mix`` (over TEXT_KINDS)."""
    if len(mix) != len(TEXT_KINDS) or any(p < 0 for p in mix) or sum(mix) <= 0:
        raise ValueError(f"text_mix needs {len(TEXT_KINDS)} non-negative weights for {TEXT_KINDS}, got {mix}")
    if not any(mix[1:]):  # captions only: draw nothing, so the batches are those of a build without the kinds
        return [("caption", records[i]["caption"]) for i in idx.tolist()]
    kinds = torch.multinomial(torch.tensor(mix, dtype=torch.float), len(idx), replacement=True, generator=generator)
    which = torch.randint(0, 6, (len(idx),), generator=generator)  # 6: uniform over 1, 2 or 3 objects
    out = []
    for i, k, w in zip(idx.tolist(), kinds.tolist(), which.tolist()):
        out.append((TEXT_KINDS[k], caption_variant(records[i], TEXT_KINDS[k], w)))
    return out


def describes(kind: str, text: str, record: dict) -> bool:
    """Whether a text of ``kind`` is true of ``record``'s image (the positives of the contrastive loss): it is one
    of the texts of that kind ``caption_variant`` gives the record."""
    return any(text == caption_variant(record, kind, w) for w in range(max(1, len(record["objects"]))))


def pretrain_clip(c: ClipPretrainConfig, seed: int, records, val_records, out_dir: Path, log) -> Path:
    """Contrastive pretraining of a tiny CLIP on (image, caption) pairs; saved in the transformers layout."""
    model, tokenizer = build_tiny_clip(image_size=c.image_size, patch_size=c.patch_size, width=c.width,
                                       layers=c.layers, heads=c.heads, text_width=c.text_width,
                                       text_layers=c.text_layers, proj_dim=c.proj_dim, seed=seed)
    pixels = load_pixels(records, c.image_size)
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=c.lr, weight_decay=0.1)
    g = torch.Generator().manual_seed(seed)
    model.train()
    bar = tqdm(range(c.steps), desc="tiny CLIP")
    for step in bar:
        idx = torch.randint(len(records), (c.batch_size,), generator=g)
        x = (augment(pixels[idx], g) - mean) / std
        texts = sample_texts(records, idx, c.text_mix, g)
        tokens = tokenizer([t for _, t in texts], padding="max_length", max_length=32, truncation=True,
                           return_tensors="pt")
        out = model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"], pixel_values=x)
        # a small world repeats itself: every text true of an image is a positive for it ("a balloon" for all
        # the images with a balloon in the batch), not just its own
        positive = torch.tensor([[describes(k, t, records[i]) for k, t in texts] for i in idx.tolist()],
                                dtype=torch.float)
        logits = out.logits_per_image
        to_text = positive / positive.sum(1, keepdim=True)
        to_image = positive.t() / positive.t().sum(1, keepdim=True)
        loss = 0.5 * (-(to_text * logits.log_softmax(1)).sum(1).mean()
                      - (to_image * logits.t().log_softmax(1)).sum(1).mean())
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, c.steps, c.lr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        if step % 50 == 0 or step == c.steps - 1:
            bar.set_postfix(loss=f"{loss.item():.3f}")
            log({"phase": "clip", "step": step, "loss": loss.item()})
    model.eval()
    acc = clip_zero_shot_accuracy(model, tokenizer, val_records, c.image_size)
    log({"phase": "clip", "val_zero_shot": acc})
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


@torch.no_grad()
def clip_zero_shot_accuracy(model, tokenizer, records, size: int) -> dict:
    """Zero-shot accuracy of the tiny CLIP on held-out images: the scene, and one of the objects (named bare and
    with an article)."""
    pixels = load_pixels(records, size).float() / 255
    x = (pixels - torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)) / torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    image = F.normalize(model.get_image_features(pixel_values=x).pooler_output, dim=-1)
    result = {}
    scenes = sorted({r["scene"] for r in records})
    objects = sorted({o for r in records for o in r["objects"]})
    for kind, names, texts, truth in (
        ("scene", scenes, [n.replace("_", " ") for n in scenes], [r["scene"] for r in records]),
        ("object", objects, [n.replace("_", " ") for n in objects], [r["objects"] for r in records]),
        ("a_object", objects, [_with_article(n.replace("_", " ")) for n in objects], [r["objects"] for r in records]),
    ):
        tokens = tokenizer(texts, padding=True, return_tensors="pt")
        text = F.normalize(model.get_text_features(**tokens).pooler_output, dim=-1)
        pred = (image @ text.t()).argmax(1).tolist()
        hits = [names[p] == t if kind == "scene" else names[p] in t for p, t in zip(pred, truth)]
        result[kind] = sum(hits) / len(hits)
    return result


def pretrain_sd(s: SDPretrainConfig, seed: int, records, clip_dir: Path, out_dir: Path, log) -> Path:
    """VAE (autoencoder), then UNet (ε-prediction on captions) with the tiny CLIP's frozen text tower."""
    clip = CLIPModel.from_pretrained(clip_dir)
    tokenizer = CLIPTokenizer.from_pretrained(clip_dir)
    text_encoder = clip.text_model.eval().requires_grad_(False)
    width = text_encoder.config.hidden_size
    levels = len(s.unet_channels)
    base = build_tiny_stable_diffusion(TinySDConfig(
        image_size=s.resolution, unet_block_out_channels=tuple(s.unet_channels), cross_attention_dim=width,
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (levels - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (levels - 1) + ("UpBlock2D",),
        attention_head_dim=8, layers_per_block=1, vae_block_out_channels=tuple(s.vae_channels),
        norm_num_groups=s.norm_num_groups,
    ), seed=seed)
    vae, unet = base.vae, base.unet
    pixels = load_pixels(records, s.resolution)
    g = torch.Generator().manual_seed(seed + 1)

    # 1) VAE: reconstruction + a small KL, as an autoencoder for the latent space
    opt = torch.optim.AdamW(vae.parameters(), lr=s.vae_lr)
    vae.train()
    bar = tqdm(range(s.vae_steps), desc="tiny VAE")
    for step in bar:
        x = augment(pixels[torch.randint(len(records), (s.vae_batch_size,), generator=g)], g) * 2 - 1
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample(generator=g)).sample
        loss = F.mse_loss(recon, x) + F.l1_loss(recon, x) + s.kl_weight * posterior.kl().mean()
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, s.vae_steps, s.vae_lr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == s.vae_steps - 1:
            bar.set_postfix(loss=f"{loss.item():.4f}")
            log({"phase": "vae", "step": step, "loss": loss.item()})
    vae.eval().requires_grad_(False)
    # scale latents to unit variance, as SD's scaling_factor does
    with torch.no_grad():
        sample = vae.encode(pixels[:512].float() / 127.5 - 1).latent_dist.mean
    vae.register_to_config(scaling_factor=float(1.0 / sample.std()))
    log({"phase": "vae", "scaling_factor": vae.config.scaling_factor})

    # 2) UNet: ε-prediction on the texts (text encoder frozen), 10 % empty for CFG
    scheduler = DDPMScheduler.from_config(base.scheduler.config)
    # every text any record can be given (captions and the short kinds; at most 3 objects), encoded once
    unique = sorted({caption_variant(r, kind, w) for r in records for kind in TEXT_KINDS for w in range(3)})
    text_index = {t: i for i, t in enumerate(unique)}
    opt = torch.optim.AdamW(unet.parameters(), lr=s.unet_lr, weight_decay=1e-2)
    with torch.no_grad():
        empty = text_encoder(tokenizer([""], padding="max_length", max_length=77, return_tensors="pt").input_ids)[0]
        ids = tokenizer(unique, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
        caption_embeds = torch.cat([text_encoder(ids[i:i + 256])[0] for i in range(0, len(unique), 256)])
        latents_all = torch.cat([vae.encode(pixels[i:i + 256].float() / 127.5 - 1).latent_dist.mean
                                 for i in range(0, len(records), 256)]) * vae.config.scaling_factor
    unet.train()
    bar = tqdm(range(s.unet_steps), desc="tiny UNet")
    ema = None
    for step in bar:
        idx = torch.randint(len(records), (s.unet_batch_size,), generator=g)
        latents = latents_all[idx]
        flip = torch.rand(len(idx), generator=g) < 0.5  # flipping latents ~ flipping images
        latents = torch.where(flip.view(-1, 1, 1, 1), latents.flip(-1), latents)
        cond = caption_embeds[torch.tensor([text_index[t] for _, t in sample_texts(records, idx, s.text_mix, g)])]
        drop = torch.rand(len(idx), generator=g) < s.caption_dropout
        cond = torch.where(drop.view(-1, 1, 1), empty.expand_as(cond), cond)
        noise = torch.randn(latents.shape, generator=g)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (len(idx),), generator=g)
        pred = unet(scheduler.add_noise(latents, noise, t), t, encoder_hidden_states=cond).sample
        loss = F.mse_loss(pred, noise)
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, s.unet_steps, s.unet_lr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        if step % 50 == 0 or step == s.unet_steps - 1:
            bar.set_postfix(loss=f"{ema:.4f}")
            log({"phase": "unet", "step": step, "loss": loss.item(), "loss_ema": ema})
    unet.eval()
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=base.scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(out_dir, safe_serialization=True)
    return out_dir


def write_sample_sheet(sd_dir: Path, records, path: Path, seed: int) -> None:
    """Caption-conditioned samples of the pretrained tiny SD (a sanity check, one per scene/object pair)."""
    pipe = load_stable_diffusion(str(sd_dir))
    pipe.set_progress_bar_config(disable=True)
    captions = sorted({r["caption"] for r in records})[:16]
    images = pipe(captions, num_inference_steps=25, guidance_scale=5.0,
                  generator=[torch.Generator().manual_seed(seed + i) for i in range(len(captions))]).images
    size = images[0].size[0]
    sheet = Image.new("RGB", (size * len(images), size))
    for i, im in enumerate(images):
        sheet.paste(im, (i * size, 0))
    sheet.save(path)


# ----------------------------------------------------------------------------------------------------------
