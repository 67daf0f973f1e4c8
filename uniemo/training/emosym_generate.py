"""EmoSym step 3, reasoning-augmented generation: the two mappers learn to drive a frozen Stable Diffusion
through the placeholder token, from the ``[EMO]`` and ``[CTX]`` hidden states of the (frozen but for its two
token rows and its head) reasoning model of step 1 or 2.

    c      = emo_mapper(h_EMO) + ctx_weight · ctx_mapper(h_CTX)              (``uniemo.emosym.mappers``)
    L      = MSE(ε_θ(z_t, t, text_encoder("<emotion>" with c in its place)), ε) + ce_weight · CE(head(h_EMO), y)

Then the emotion space is fitted over (h_EMO, h_CTX) of the training images (``EmotionSpace``, kinds emo and ctx)
and the model folder of step 1/2 is written again to ``<out_dir>/final`` with the mappers, the space and the
diffusion base's name. Validation top-1 is logged per epoch; the final model is the last one (the generation
half has no validation measure here; ``eval/tiny_report.py``-style scoring is the place for that).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from torch import nn

from uniemo.constants import PLACEHOLDER_TOKEN
from uniemo.diffusion import add_placeholder_token, encode_condition, load_stable_diffusion
from uniemo.emosym.mappers import EmoSymMapperConfig, EmoSymMappers
from uniemo.emosym.model_folder import load_emosym, read_descriptor, save_emosym
from uniemo.emotion_space import EmotionSpace
from uniemo.losses import diffusion_loss
from uniemo.training.emosym_config import EmoSymGenerateConfig
from uniemo.training.emosym_loop import emosym_datasets, train_emosym
from uniemo.training.run import start_run
from uniemo.training.stage2 import JointTransform

EMOSYM_KINDS = ("emo", "ctx")


class ReasonAndMap(nn.Module):
    """The reasoning model and the mappers as one module (one DDP wrapper); ``forward`` adds the condition."""

    def __init__(self, model, mappers: EmoSymMappers):
        super().__init__()
        self.model, self.mappers = model, mappers

    def encode(self, images):
        return self.model.encode(images)

    def forward(self, **inputs):
        out = self.model(**inputs)
        out.condition = self.mappers(out.emo_hidden, out.ctx_hidden)
        return out


def denoising_loss(sd, noise_scheduler, placeholder_id: int, pixels01: torch.Tensor, condition: torch.Tensor,
                   prompts: list[str], generator: torch.Generator) -> torch.Tensor:
    """ε- (or v-) prediction MSE of the frozen UNet on the images' latents, with ``condition`` in the
    placeholder's place in ``prompts``."""
    device, dtype = condition.device, sd.unet.dtype
    with torch.no_grad():
        latents = sd.vae.encode((pixels01 * 2 - 1).to(device, sd.vae.dtype)).latent_dist.sample(generator=generator)
        latents = (latents * sd.vae.config.scaling_factor).to(dtype)
    noise = torch.randn(latents.shape, generator=generator, dtype=latents.dtype).to(device)
    timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (latents.shape[0],),
                              generator=generator).to(device)
    noisy = noise_scheduler.add_noise(latents, noise, timesteps)
    embeds = encode_condition(sd.text_encoder, sd.tokenizer, condition.to(sd.text_encoder.dtype), prompts,
                              placeholder_id)
    prediction = sd.unet(noisy, timesteps, encoder_hidden_states=embeds.to(dtype)).sample
    target = (noise_scheduler.get_velocity(latents, noise, timesteps)
              if noise_scheduler.config.prediction_type == "v_prediction" else noise)
    return diffusion_loss(prediction, target)


@torch.no_grad()
def gather_features(model, dataset, batch_size: int, device) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """(h_EMO, h_CTX) of every image of ``dataset`` (eval mode) and the labels, for the emotion space."""
    model.eval()
    emo, ctx, labels = [], [], []
    for start in range(0, len(dataset), batch_size):
        records = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        records = [r for r in records if r is not None]
        if not records:
            continue
        inputs = {k: v.to(device) for k, v in model.encode([r["pixel_values"] for r in records]).items()}
        out = model(**inputs)
        emo.append(out.emo_hidden.float().cpu())
        ctx.append(out.ctx_hidden.float().cpu())
        labels += [r["labels"] for r in records]
    return {"emo": torch.cat(emo), "ctx": torch.cat(ctx)}, torch.tensor(labels)


def run_generate(cfg: EmoSymGenerateConfig) -> dict:
    """Train step 3 from ``model.init`` and write ``<out_dir>/final``; returns the final figures."""
    cfg.validate()
    accelerator = start_run(cfg, cfg.out_dir, "emosym-generate")
    device = accelerator.device
    train_set, val_set, emotions = emosym_datasets(cfg.data)
    model, base, _ = load_emosym(cfg.model.init, cfg.model.dtype, trainable=True)
    model.set_trainable("generate")
    sd = load_stable_diffusion(cfg.diffusion)
    placeholder_id = add_placeholder_token(sd.tokenizer, sd.text_encoder)
    for part in (sd.vae, sd.unet, sd.text_encoder):
        part.requires_grad_(False).eval().to(device)
    noise_scheduler = DDPMScheduler.from_config(sd.scheduler.config)
    text_width = sd.text_encoder.get_input_embeddings().embedding_dim
    mappers = EmoSymMappers(EmoSymMapperConfig(hidden_size=model.hidden_size, text_width=text_width,
                                               mapper_hidden=cfg.mapper_hidden, ctx_weight=cfg.ctx_weight))
    wrapper = ReasonAndMap(model, mappers)
    groups = [{"params": [p for p in model.parameters() if p.requires_grad], "lr": cfg.lr},
              {"params": list(mappers.parameters()), "lr": cfg.lr_mappers}]
    to_pixels = JointTransform(cfg.resolution, train=True)
    generator = torch.Generator().manual_seed(cfg.seed * 1000 + accelerator.process_index)

    def batch_loss(net, inputs, batch):
        out = net(**inputs)
        labels = batch["labels"].to(device)
        ce = F.cross_entropy(out.logits.float(), labels)
        pixels = torch.stack([to_pixels(im) for im in batch["pixel_values"]])
        prompts = [f"{PLACEHOLDER_TOKEN} {objects[0]}" if objects and float(torch.rand(1, generator=generator))
                   < cfg.object_prompt_fraction else PLACEHOLDER_TOKEN for objects in batch["objects"]]
        mse = denoising_loss(sd, noise_scheduler, placeholder_id, pixels, out.condition, prompts, generator)
        return mse + cfg.ce_weight * ce, {"diffusion": mse, "ce": ce}

    final = train_emosym(cfg, accelerator, wrapper, train_set, val_set, "EmoSym step 3", batch_loss,
                         lambda core, top1, step: None, param_groups=groups)
    if accelerator.is_main_process:
        features, labels = gather_features(model, train_set, cfg.eval_batch_size, device)
        space = EmotionSpace.fit(features, labels, tuple(emotions), components=cfg.emotion_space_components,
                                 kinds=EMOSYM_KINDS)
        info = {**read_descriptor(cfg.model.init), "step": "generate", "init": cfg.model.init,
                "diffusion": cfg.diffusion, "resolution": cfg.resolution, "placeholder_token": PLACEHOLDER_TOKEN,
                "val_top1": final["best_val_top1"]}
        info.pop("format_version", None)
        save_emosym(Path(cfg.out_dir) / "final", model, base, info, mappers.cpu(), space)
    accelerator.wait_for_everyone()
    return final
