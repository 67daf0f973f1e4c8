"""Stage 2 (joint training) building blocks: the trainable half, the per-step losses, loading and freezing, and
the optimiser. The loop is ``uniemo.training.joint.run_joint``; what a run leaves behind (emotion space,
validation grids, model folder) is in ``uniemo.training.stage2_outputs``, the memory bank's update in
``uniemo.training.bank_update``.

``joint_step`` is the only place where the understanding and generation halves meet (paper III-B): the classifier
encodes the image (L_U), α is looked up at the ground-truth emotion, the mappers fuse the embeds into c (Eq. 6),
the condition loss is taken (Eq. 7), and c replaces the placeholder token per sample for the frozen UNet's
ε-prediction loss (Eq. 8).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import transforms as T

from uniemo.attributes import AttributeTargets
from uniemo.classifier import EmoClassifier
from uniemo.correlation import CorrelationTable
from uniemo.diffusion import add_placeholder_token, encode_condition, load_stable_diffusion
from uniemo.fusion import EmoFusion, EmoFusionConfig, fuse_features
from uniemo.losses import (condition_negatives, diffusion_loss, emotion_ce_loss, emotion_condition_loss,
                           expert_contrastive_loss, official_condition_loss, weighted_sum)


class UnderstandingAndFusion(nn.Module):
    """The trainable half: classifier + fusion, one module so that accelerate/DDP wraps it once.

    ``forward`` returns the classifier output, the fused condition c and its condition-head logits.
    """

    def __init__(self, classifier, fusion, correlation):
        super().__init__()
        self.classifier, self.fusion = classifier, fusion
        self.correlation = correlation  # CorrelationTable or None (α = 1); not a module, holds no parameters

    def forward(self, pixel_values: torch.Tensor, emotion_idx: torch.Tensor):
        out = self.classifier(pixel_values)
        condition = fuse_features(self.classifier, self.fusion, self.correlation, out, emotion_idx)
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


def joint_step(models: dict, batch: dict, cfg, generator: torch.Generator | list[torch.Generator]
               ) -> dict[str, callable]:
    """The only place the understanding and generation halves meet.

    Args:
        models: ``joint`` (UnderstandingAndFusion, possibly DDP-wrapped), ``vae``, ``unet``, ``text_encoder``,
            ``tokenizer``, ``noise_scheduler``, ``placeholder_id``, ``attributes``, ``weight_dtype``.
        batch: ``pixel_values`` (B, 3, R, R) in [0, 1] at the diffusion resolution, ``labels``, attributes.
        generator: one for the batch, or one per row (the training loop's: each sample's object pick, latent
            sample, noise, timestep and prompt are then its own, whatever the split of the batch over processes).
    Returns:
        name -> zero-argument callable for each loss term (weight-0 terms are never evaluated).
    """
    joint = models["joint"]
    inner = getattr(joint, "module", joint)
    per_row = isinstance(generator, (list, tuple))
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
        rows = real.nonzero().flatten().tolist() if real is not None else list(range(len(images)))
        row_generators = [generator[i] for i in rows] if per_row else None
        with torch.no_grad():
            # Convert images to latent space (frozen VAE)
            latents = vae.encode((pixels * 2 - 1).to(wd)).latent_dist.sample(generator=row_generators)
            latents = latents * vae.config.scaling_factor
        # Sample noise and a random timestep per image, and add the noise (forward diffusion)
        num_timesteps = scheduler.config.num_train_timesteps
        if per_row:  # each image draws from its own generator: the same numbers whatever the process count
            noise = torch.stack([torch.randn(latents.shape[1:], generator=g, dtype=latents.dtype)
                                 for g in row_generators]).to(device)
            timesteps = torch.cat([torch.randint(0, num_timesteps, (1,), generator=g) for g in row_generators])
        else:
            noise = torch.randn(latents.shape, generator=generator, dtype=latents.dtype).to(device)
            timesteps = torch.randint(0, num_timesteps, (latents.shape[0],), generator=generator)
        timesteps = timesteps.to(device)
        noisy_latents = scheduler.add_noise(latents, noise, timesteps)
        # The condition enters through the placeholder token, per sample and differentiably
        prompts = models["prompt"]
        if cfg.object_prompt_fraction > 0:
            draws = ([float(torch.rand(1, generator=g)) for g in row_generators] if per_row
                     else torch.rand(len(rows), generator=generator).tolist())
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
        geometry = ([T.RandomResizedCrop(resolution, scale=(0.5, 1.0), interpolation=T.InterpolationMode.BICUBIC),
                     T.RandomHorizontalFlip()] if train else
                    [T.Resize(resolution, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(resolution)])
        self.transform = T.Compose([*geometry, T.ToTensor()])

    def __call__(self, image):
        return self.transform(image)


def load_components(cfg, device):
    """Stage-1 classifier, attributes, correlation table, fusion, and the Stable Diffusion parts."""
    stage1 = Path(cfg.model.stage1)
    classifier_dir = stage1 / "classifier" if (stage1 / "classifier").is_dir() else stage1
    classifier = EmoClassifier.from_pretrained(classifier_dir)
    if not classifier.config.use_queries:
        raise ValueError("stage 2 needs a classifier with expert queries (use_queries=true)")
    attributes = AttributeTargets.load(stage1)
    correlation = None
    if cfg.model.correlation:
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
