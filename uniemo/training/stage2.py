"""Stage 2 (joint training) building blocks: the trainable half, the per-step losses, loading and freezing,
the optimiser, the emotion space, validation grids, the memory bank's update and the model folder.

The loop itself is written out in ``train/joint.py``. ``joint_step`` is the only place where the
understanding and generation halves meet (paper III-B): the classifier encodes the image (L_U), α is looked up
at the ground-truth emotion, the mappers fuse the embeds into c (Eq. 6), the condition loss is taken (Eq. 7),
and c replaces the placeholder token per sample for the frozen UNet's ε-prediction loss (Eq. 8).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from uniemo.constants import PLACEHOLDER_TOKEN


class UnderstandingAndFusion(nn.Module):
    """The trainable half: classifier + fusion, one module so that accelerate/DDP wraps it once.

    ``forward`` returns the classifier output, the fused condition c and its condition-head logits.
    """

    def __init__(self, classifier, fusion, correlation):
        super().__init__()
        self.classifier, self.fusion = classifier, fusion
        self.correlation = correlation  # CorrelationTable or None (α = 1); not a module, holds no parameters

    def alphas(self, out, emotion_idx: torch.Tensor):
        """α_Scene, α_Object (B,) at ``emotion_idx`` for the attributes nearest to the pooled queries."""
        if self.correlation is None:
            ones = torch.ones(len(emotion_idx), device=out.cls_embed.device)
            return ones, ones
        with torch.no_grad():
            scene_pts, object_pts = self.classifier.project_queries(out)
            s_idx, o_idx, _, _ = self.correlation.match(scene_pts.float(), object_pts.float())
            a_s, a_o = self.correlation.lookup(s_idx, o_idx, emotion_idx)
        return a_s.to(out.cls_embed.device), a_o.to(out.cls_embed.device)

    def forward(self, pixel_values: torch.Tensor, emotion_idx: torch.Tensor):
        out = self.classifier(pixel_values)
        a_s, a_o = self.alphas(out, emotion_idx)
        condition = self.fusion(out.cls_embed, out.scene_embed, out.object_embed, a_s, a_o)
        return out, condition, self.fusion.condition_logits(condition)


def frozen_head_logits(classifier, condition: torch.Tensor) -> torch.Tensor:
    """z = the stage-1 emotion head's last layer (Linear(head_hidden, classes)) on c, with its weights detached
    (frozen, as in the released code, whatever ``model.train_head`` says). Needs c's width = ``head_hidden``
    (768 for SD 1.5 and the paper's head)."""
    last = classifier.head[-1]
    if condition.shape[-1] != last.in_features:
        raise ValueError(f"the official condition loss applies the stage-1 head's last layer ({last.in_features} "
                         f"inputs) to c ({condition.shape[-1]} wide): it needs head_hidden = the diffusion text "
                         "width (768 for SD 1.5)")
    return F.linear(condition, last.weight.detach().to(condition.dtype), last.bias.detach().to(condition.dtype))


def classifier_view(images01: torch.Tensor, config) -> torch.Tensor:
    """[0, 1] images at the diffusion resolution -> the classifier's input (its size and normalisation)."""
    x = F.interpolate(images01, size=(config.image_size, config.image_size), mode="bicubic",
                      antialias=True, align_corners=False).clamp(0, 1)
    mean = torch.tensor(config.image_mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(config.image_std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


def joint_step(models: dict, batch: dict, cfg, generator: torch.Generator) -> dict[str, callable]:
    """The only place the understanding and generation halves meet.

    Args:
        models: ``joint`` (UnderstandingAndFusion, possibly DDP-wrapped), ``vae``, ``unet``, ``text_encoder``,
            ``tokenizer``, ``noise_scheduler``, ``placeholder_id``, ``attributes``, ``weight_dtype``.
        batch: ``pixel_values`` (B, 3, R, R) in [0, 1] at the diffusion resolution, ``labels``, attributes.
    Returns:
        name -> zero-argument callable for each loss term (weight-0 terms are never evaluated).
    """
    from uniemo.diffusion import encode_condition
    from uniemo.losses import (condition_negatives, diffusion_loss, emotion_ce_loss, emotion_condition_loss,
                               expert_contrastive_loss, official_condition_loss, weighted_sum)

    joint = models["joint"]
    inner = getattr(joint, "module", joint)
    device = batch["pixel_values"].device
    images = batch["pixel_values"]
    labels = batch["labels"].to(device)
    out, condition, condition_logits = joint(classifier_view(images, inner.classifier.config), labels)
    # Generated images (explicit feedback, memory bank) feed the understanding losses only: training the
    # generation half on the model's own outputs would reinforce its own mistakes.
    generated = batch.get("generated")
    real = None if generated is None or not bool(generated.any()) else ~generated.to(device)
    scene_ids, object_ids, scene_text, object_text = models["attributes"].batch(
        batch["scene"], batch["objects"], generator, device, dummy=cfg.loss.released_masking)
    lc = cfg.loss

    def understanding():
        projected = {}

        def project():
            if not projected:
                projected["s"], projected["o"] = inner.classifier.project_queries(out)
            return projected["s"], projected["o"]

        total, _ = weighted_sum({"emotion": lc.emotion, "scene": lc.scene, "object": lc.object}, {
            "emotion": lambda: emotion_ce_loss(out.logits, labels),
            "scene": lambda: expert_contrastive_loss(project()[0], scene_text, scene_ids, lc.temperature, lc.symmetric,
                                                     released_masking=lc.released_masking),
            "object": lambda: expert_contrastive_loss(project()[1], object_text, object_ids, lc.temperature,
                                                      lc.symmetric, released_masking=lc.released_masking),
        })
        return total

    def condition_term():
        logits, cond_logits, target = out.logits, condition_logits, labels
        if real is not None:
            if not bool(real.any()):
                return condition_logits.sum() * 0.0  # a batch of generated images only: nothing to learn here
            logits, cond_logits, target = logits[real], cond_logits[real], target[real]
        negatives = condition_negatives(logits.detach(), target)
        if lc.condition_variant == "official":
            # the released code: raw logits of the frozen stage-1 head's last layer applied to c
            cond = condition if real is None else condition[real]
            return official_condition_loss(frozen_head_logits(inner.classifier, cond), target, negatives,
                                           margin=lc.condition_margin)
        return emotion_condition_loss(cond_logits, target, negatives, margin=lc.condition_margin)

    def diffusion_term():
        vae, unet, scheduler = models["vae"], models["unet"], models["noise_scheduler"]
        wd = models["weight_dtype"]
        pixels, cond = images, condition
        if real is not None:
            if not bool(real.any()):  # zero gradients still reach every trainable parameter (DDP needs them)
                return (condition.sum() + sum(p.sum() for p in unet.parameters() if p.requires_grad)) * 0.0
            pixels, cond = images[real], condition[real]  # (B_real, ...)
        with torch.no_grad():
            # Convert images to latent space (frozen VAE)
            latents = vae.encode((pixels * 2 - 1).to(wd)).latent_dist.sample(generator=None)
            latents = latents * vae.config.scaling_factor
        # Sample noise and a random timestep per image, and add the noise (forward diffusion)
        noise = torch.randn(latents.shape, generator=generator, dtype=latents.dtype).to(device)
        timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (latents.shape[0],), generator=generator)
        timesteps = timesteps.to(device)
        noisy_latents = scheduler.add_noise(latents, noise, timesteps)
        # The condition enters through the placeholder token, per sample and differentiably
        prompts = models["prompt"]
        if cfg.object_prompt_fraction > 0:
            rows = real.nonzero().flatten().tolist() if real is not None else range(len(images))
            draws = torch.rand(len(rows), generator=generator).tolist()
            prompts = [f"{models['prompt']} {batch['objects'][i][0]}"
                       if batch["objects"][i] and u < cfg.object_prompt_fraction else models["prompt"]
                       for i, u in zip(rows, draws)]
        prompt_embeds = encode_condition(models["text_encoder"], models["tokenizer"], cond.to(wd),
                                         prompts, models["placeholder_id"])
        model_pred = unet(noisy_latents, timesteps, encoder_hidden_states=prompt_embeds).sample
        if scheduler.config.prediction_type == "v_prediction":
            target = scheduler.get_velocity(latents, noise, timesteps)
        else:
            target = noise
        return diffusion_loss(model_pred, target)

    return {"understanding": understanding, "condition": condition_term, "diffusion": diffusion_term}


class JointTransform:
    """PIL -> [0, 1] tensor at the diffusion resolution; the classifier view is derived from it on device."""

    def __init__(self, resolution: int, train: bool):
        from torchvision import transforms as T

        geometry = ([T.RandomResizedCrop(resolution, scale=(0.5, 1.0), interpolation=T.InterpolationMode.BICUBIC),
                     T.RandomHorizontalFlip()] if train else
                    [T.Resize(resolution, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(resolution)])
        self.transform = T.Compose([*geometry, T.ToTensor()])

    def __call__(self, image):
        return self.transform(image)


def load_components(cfg, device):
    """Stage-1 classifier, attributes, correlation table, fusion, and the Stable Diffusion parts."""
    from uniemo.attributes import AttributeTargets
    from uniemo.classifier import EmoClassifier
    from uniemo.diffusion import add_placeholder_token, load_stable_diffusion
    from uniemo.fusion import EmoFusion, EmoFusionConfig

    stage1 = Path(cfg.model.stage1)
    classifier_dir = stage1 / "classifier" if (stage1 / "classifier").is_dir() else stage1
    classifier = EmoClassifier.from_pretrained(classifier_dir)
    if not classifier.config.use_queries:
        raise ValueError("stage 2 needs a classifier with expert queries (use_queries=true)")
    attributes = AttributeTargets.load(stage1)
    correlation = None
    if cfg.model.correlation:
        from uniemo.correlation import CorrelationTable

        correlation = CorrelationTable.load(cfg.model.correlation)
        if tuple(correlation.emotions) != tuple(classifier.config.emotions):
            raise ValueError(f"correlation table emotions {correlation.emotions} differ from the classifier's")
    pipe = load_stable_diffusion(cfg.model.diffusion)
    placeholder_id = add_placeholder_token(pipe.tokenizer, pipe.text_encoder,
                                           initializer_token=cfg.model.placeholder_initializer)
    text_width = pipe.text_encoder.get_input_embeddings().embedding_dim
    if cfg.model.init_fusion:
        # Continue from a trained model (explicit feedback's next round): its mappers, not a fresh init.
        init = Path(cfg.model.init_fusion)
        fusion = EmoFusion.from_pretrained(init / "fusion" if (init / "fusion").is_dir() else init)
        fc = fusion.config
        if (fc.vision_width, fc.text_width, tuple(fc.emotions)) != (classifier.config.width, text_width,
                                                                    tuple(classifier.config.emotions)):
            raise ValueError(f"model.init_fusion {init} (vision width {fc.vision_width}, text width {fc.text_width}, "
                             f"emotions {fc.emotions}) does not fit the classifier and the diffusion text encoder")
    else:
        fusion = EmoFusion(EmoFusionConfig(vision_width=classifier.config.width, hidden_size=cfg.model.fusion_hidden,
                                           text_width=text_width, num_classes=classifier.config.num_classes,
                                           emotions=classifier.config.emotions))
    return classifier, attributes, correlation, fusion, pipe, placeholder_id


def set_trainable(classifier, fusion, unet, mc) -> None:
    """requires_grad per group (frozen modules spend no gradient memory)."""
    groups = classifier.parameter_groups()
    switches = {"backbone": mc.train_backbone, "queries": mc.train_queries, "projections": mc.train_projections,
                "head": mc.train_head}
    for group, named in groups.items():
        learnable_proj = classifier.config.learnable_proj or group != "projections"
        for _, p in named:
            p.requires_grad_(switches[group] and learnable_proj)
    fusion.requires_grad_(True)
    unet.requires_grad_(mc.train_unet)


def build_optimizer(classifier, fusion, unet, oc):
    lrs = {"backbone": oc.lr_backbone, "queries": oc.lr_queries, "projections": oc.lr_projections,
           "head": oc.lr_head}
    named_groups = {g: [p for _, p in named] for g, named in classifier.parameter_groups().items()}
    named_groups["mappers"] = list(fusion.parameters())
    named_groups["unet"] = list(unet.parameters())
    lrs.update(mappers=oc.lr_mappers, unet=oc.lr_unet)
    groups = []
    for name, params in named_groups.items():
        params = [p for p in params if p.requires_grad]
        for subset, wd in (([p for p in params if p.ndim >= 2], oc.weight_decay), ([p for p in params if p.ndim < 2], 0.0)):
            if subset:
                groups.append({"params": subset, "lr": lrs[name], "weight_decay": wd, "name": name})
    if not groups:
        raise ValueError("nothing to train: every model.train_* switch is off")
    return torch.optim.AdamW(groups, betas=tuple(oc.betas))


@torch.no_grad()
def fit_emotion_space(classifier, dataset, accelerator, batch_size: int, num_workers: int):
    """Encoder features over ``dataset`` (eval mode, eval transform), gathered over processes, fitted once."""
    from tqdm.auto import tqdm

    from uniemo.data import collate_records
    from uniemo.emotion_space import EmotionSpace

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
                            tuple(classifier.config.emotions))


@torch.no_grad()
def validation_conditions(inner, dataset, attributes, device, per_emotion: int = 8):
    """One condition per emotion from the mean embeddings of a few val images (fixed, no sampling)."""
    from uniemo.data import collate_records

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
        mean = lambda t: t.mean(0, keepdim=True)  # noqa: E731
        a_s, a_o = inner.alphas(type(out)(cls_embed=mean(out.cls_embed), scene_embed=mean(out.scene_embed),
                                          object_embed=mean(out.object_embed)), label)
        conditions.append(inner.fusion(mean(out.cls_embed), mean(out.scene_embed), mean(out.object_embed), a_s, a_o))
    inner.train(was_training)
    return conditions


@torch.no_grad()
def log_validation(pipe, conditions, emotions, placeholder_id, cfg, path: Path) -> None:
    """A fixed-seed image per emotion (seed = emotion index), saved as one labelled strip."""
    from PIL import Image, ImageDraw

    from uniemo.diffusion import encode_condition, encode_prompt

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


@torch.no_grad()
def quick_emotion_space(classifier, dataset, per_emotion: int, batch_size: int, device, seed: int):
    """An emotion space from ``per_emotion`` random training images of each emotion (current encoder, eval mode).

    The memory bank generates from the model as it is now; refitting on the whole split at every update would
    cost a full pass, while a few dozen images per emotion already place each Gaussian.
    """
    from tqdm.auto import tqdm

    from uniemo.data import collate_records
    from uniemo.emotion_space import EmotionSpace

    g = torch.Generator().manual_seed(seed)
    labels = torch.tensor([entry.label for entry in dataset.entries])
    chosen = []
    for e in range(len(dataset.labels)):
        members = torch.nonzero(labels == e).flatten()
        chosen += members[torch.randperm(len(members), generator=g)[:per_emotion]].tolist()
    feats: dict[str, list] = {"cls": [], "scene": [], "object": []}
    seen = []
    was_training = classifier.training
    classifier.eval()
    for start in tqdm(range(0, len(chosen), batch_size), desc="bank: emotion space", unit="batch"):
        batch = collate_records([dataset[i] for i in chosen[start:start + batch_size]])
        if batch is None:
            continue
        f = classifier.forward_features(batch["pixel_values"].to(device))
        for key, value in zip(("cls", "scene", "object"), (f.cls_embed, f.scene_embed, f.object_embed)):
            feats[key].append(value.float().cpu())
        seen.append(batch["labels"])
    classifier.train(was_training)
    return EmotionSpace.fit({k: torch.cat(v) for k, v in feats.items()}, torch.cat(seen),
                            tuple(classifier.config.emotions))


@torch.no_grad()
def real_confidences(classifier, dataset, indices: list[int], batch_size: int, device, kind: str):
    """The classifier's confidence on the *real* samples ``indices`` (eval transform): p(true label) or max p.

    Returns:
        (N,) float64 numpy array over the whole dataset, NaN where a sample was not scored.
    """
    import numpy as np
    from tqdm.auto import tqdm

    from uniemo.data import collate_records

    out = np.full(len(dataset), np.nan)
    was_training = classifier.training
    classifier.eval()
    for start in tqdm(range(0, len(indices), batch_size), desc="bank: real confidences", unit="batch"):
        batch = collate_records([dataset[i] for i in indices[start:start + batch_size]])
        if batch is None:
            continue
        probs = classifier(batch["pixel_values"].to(device)).logits.float().softmax(dim=-1).cpu()
        conf = (probs.gather(1, batch["labels"][:, None]).squeeze(1) if kind == "label"
                else probs.max(dim=-1).values)
        out[batch["index"].numpy()] = conf.double().numpy()
    classifier.train(was_training)
    return out


def update_memory_bank(bank, joint, pipe, placeholder_id, attributes, correlation, scorer, space_set,
                       cfg, step: int, device, bank_dir: Path) -> dict:
    """One bank update (main process): generate M per emotion, filter (Alg. 1), score the real samples, swap.

    Returns:
        A log record; the bank's state is also written to ``bank_dir/state.json`` for the other processes.
    """
    from tqdm.auto import tqdm

    from uniemo.data.base import ImageEntry
    from uniemo.filtering import select_feedback
    from uniemo.memory_bank import confidence_pool
    from uniemo.pipeline import UniEmoPipeline

    mb = cfg.memory_bank
    t0 = time.time()
    inner = getattr(joint, "module", joint)
    emotions = tuple(inner.classifier.config.emotions)
    out = bank_dir / f"step-{step:06d}"
    # Conditions from the model as it is now: a quick emotion space, then the stock inference path
    space = quick_emotion_space(inner.classifier, space_set, mb.space_per_emotion, cfg.space_batch_size, device,
                                seed=cfg.seed * 100_003 + step)
    saved_scheduler = pipe.scheduler
    paths, intended = [], []
    try:
        generator = UniEmoPipeline(inner.classifier, inner.fusion, space, attributes, pipe, placeholder_id,
                                   correlation, resolution=cfg.resolution).to(device)
        generator.set_scheduler(mb.scheduler)
        for e, emotion in enumerate(tqdm(emotions, desc="bank: generate", unit="emotion")):
            (out / emotion).mkdir(parents=True, exist_ok=True)
            base = (cfg.seed * 100_003 + step) * 100_000 + 1000 * e  # image i: base + i, distinct per update
            for start in range(0, mb.per_emotion, 16):
                count = min(16, mb.per_emotion - start)
                images = generator.generate(emotion, num_images=count, seed=base + start,
                                            num_inference_steps=mb.steps, guidance_scale=mb.guidance)
                for i, image in enumerate(images, start=start):
                    path = out / emotion / f"{emotion}_{i:04d}.png"
                    image.save(path)
                    paths.append(str(path))
                    intended.append(e)
    finally:
        # UniEmoPipeline switched the shared SD pipeline's sampler and put the modules in eval mode
        pipe.scheduler = saved_scheduler
        joint.train()

    # Algorithm 1 on the new images, bands within each emotion
    scores = scorer.feedback_scores(paths, intended, progress="bank: score")
    kept = select_feedback(scores["emotion_score"], scores["semantic_score"], mb.eta, mb.delta, groups=intended)
    items = [ImageEntry(path=paths[i], label=intended[i]) for i in kept]

    # The real samples' confidence, from the real images (EmoSym's code scored the generated ones here)
    pool = confidence_pool(bank.num_real, mb.confidence_pool, cfg.seed * 100_003 + step)
    confidences = real_confidences(inner.classifier, space_set, pool, cfg.space_batch_size, device, mb.confidence)
    joint.train()
    replaced = bank.update(items, confidences)

    kept_set = set(kept)
    (out / "scores.json").write_text(json.dumps({"step": step, "candidates": [
        {"path": p, "emotion": emotions[e], "emotion_score": float(scores["emotion_score"][i]),
         "semantic_score": float(scores["semantic_score"][i]), "kept": i in kept_set}
        for i, (p, e) in enumerate(zip(paths, intended))]}, indent=1) + "\n")
    (bank_dir / "state.json").write_text(json.dumps({"step": step, **bank.state_dict()}) + "\n")
    return {"generated": len(paths), "kept": len(kept), "bank_images": len(bank.items), "bank_slots": bank.num_slots,
            "replaced": len(replaced), "generated_share": bank.generated_share(),
            "mean_replaced_confidence": float(confidences[replaced].mean()) if replaced else None,
            "seconds": round(time.time() - t0, 2)}


def write_model_folder(out: Path, inner, attributes, correlation, space, pipe, cfg) -> None:
    """The model folder (loaded by ``UniEmoPipeline.from_pretrained``), its ``uniemo.json`` and model card written
    by ``uniemo.model_folder.write_manifest``."""
    from uniemo.model_folder import MANIFEST, read_manifest, write_manifest

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
        from uniemo.diffusion import load_stable_diffusion

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
