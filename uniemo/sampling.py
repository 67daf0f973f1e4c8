"""Sampling for ``UniEmoPipeline``: the settings it accepts, the schedulers, and the two ways it renders.

``render`` calls the stock diffusers ``StableDiffusionPipeline`` with prompt embeddings (negative = the empty
prompt): every plain generation goes through it. ``render_composed`` is the one denoising loop of our own, for
transfer with the noun weighed on its own (composable guidance); with the noun weighed like the rest it gives the
stock pipeline's images.

Seeds: image i of a call with ``seed=s`` starts from the latents of ``torch.Generator().manual_seed(s + i)``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from diffusers import (DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler, PNDMScheduler,
                       UniPCMultistepScheduler)
from PIL import Image

from uniemo.constants import PLACEHOLDER_TOKEN

SCHEDULER_CLASSES = {"unipc": UniPCMultistepScheduler, "ddim": DDIMScheduler, "dpm++": DPMSolverMultistepScheduler,
                     "euler": EulerDiscreteScheduler, "pndm": PNDMScheduler}
SCHEDULERS = tuple(SCHEDULER_CLASSES)
MAX_IMAGES = 16
MAX_STEPS = 200
MAX_GUIDANCE = 30.0
MAX_NOUN_CHARS = 200
# Official sampler settings (UniPC, 50 steps, guidance 7.5); FAST_SETTINGS are documented faster ones.
# A model folder may recommend its own in uniemo.json "sampler", including "space_scale": the factor on the
# emotion-space standard deviations when sampling (1 = the fitted Gaussians; < 1 draws closer to each
# emotion's centroid, a truncation-style trade of diversity for fidelity), and for transfer
# "transfer_guidance_scale" (its guidance_scale, else "guidance_scale") and "noun_guidance_scale" (see
# UniEmoPipeline.transfer).
OFFICIAL_SETTINGS = {"scheduler": "unipc", "num_inference_steps": 50, "guidance_scale": 7.5}
FAST_SETTINGS = {"scheduler": "dpm++", "num_inference_steps": 20, "guidance_scale": 7.5}

Settings = tuple[int, float, int]  # (num_inference_steps, guidance_scale, size)
Callback = Callable[[int, int], None]  # (steps done, steps in all)


def build_scheduler(name: str, config):
    """The scheduler ``name`` (one of ``SCHEDULERS``) from a scheduler ``config`` (the current one's)."""
    if name not in SCHEDULER_CLASSES:
        raise ValueError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}")
    return SCHEDULER_CLASSES[name].from_config(config)


def check_guidance(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= MAX_GUIDANCE:
        raise ValueError(f"{name} must be a number between 0 and {MAX_GUIDANCE}, got {value!r}")


def check_settings(num_images, steps, guidance, size) -> Settings:
    """Validate a call's settings (defaults already filled in); returns (steps, guidance, size)."""
    if isinstance(num_images, bool) or not isinstance(num_images, int) or not 1 <= num_images <= MAX_IMAGES:
        raise ValueError(f"num_images must be an integer from 1 to {MAX_IMAGES}, got {num_images!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"num_inference_steps must be an integer from 1 to {MAX_STEPS}, got {steps!r}")
    check_guidance("guidance_scale", guidance)
    if isinstance(size, bool) or not isinstance(size, int) or size % 8 or not 8 <= size <= 2048:
        raise ValueError(f"size must be a multiple of 8 between 8 and 2048, got {size!r}")
    return steps, float(guidance), size


def check_noun(noun: str, suggestions: tuple[str, ...]) -> str:
    """The noun with its whitespace collapsed; a clear error (naming ``suggestions``) for an unusable one."""
    if not isinstance(noun, str) or not noun.strip():
        raise ValueError(f"the noun is empty: give an object such as {', '.join(suggestions)}")
    noun = " ".join(noun.split())
    if len(noun) > MAX_NOUN_CHARS:
        raise ValueError(f"the noun is {len(noun)} characters long; at most {MAX_NOUN_CHARS} are allowed")
    if PLACEHOLDER_TOKEN in noun:
        raise ValueError(f"the noun may not contain the placeholder token {PLACEHOLDER_TOKEN}")
    return noun


def mark_flagged(images: list[Image.Image], flagged: list[bool] | None) -> list[Image.Image]:
    """Record the safety checker's verdict on each image as ``image.info["nsfw"]`` (only when it ran)."""
    if flagged is not None:
        for image, flag in zip(images, flagged):
            image.info["nsfw"] = bool(flag)
    return images


def _seeded(seed: int, n: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed + i) for i in range(n)]


@torch.no_grad()
def render(sd, prompt_embeds: torch.Tensor, negative: torch.Tensor, seed: int, settings: Settings,
           callback: Callback | None) -> list[Image.Image]:
    """The stock pipeline ``sd`` on ``prompt_embeds`` (B, 77, C) against ``negative`` (1, 77, C)."""
    steps, guidance, size = settings

    def on_step(pipe, step, timestep, kwargs):
        if callback is not None:
            callback(step + 1, steps)
        return kwargs

    out = sd(prompt_embeds=prompt_embeds, negative_prompt_embeds=negative.expand(len(prompt_embeds), -1, -1),
             height=size, width=size, num_inference_steps=steps, guidance_scale=guidance,
             generator=_seeded(seed, len(prompt_embeds)), callback_on_step_end=on_step, output_type="pil")
    return mark_flagged(out.images, out.nsfw_content_detected)


@torch.no_grad()
def render_composed(sd, base_embeds: torch.Tensor, noun_embeds: torch.Tensor, negative: torch.Tensor,
                    noun_guidance: float, seed: int, settings: Settings, callback: Callback | None,
                    device: torch.device) -> list[Image.Image]:
    """Composable classifier-free guidance (Liu et al. 2022) with the noun as its own concept:

        ε = ε(∅) + g·(ε(c) − ε(∅)) + g_n·(ε(c, noun) − ε(c))

    ``base_embeds`` encode ``"<emotion>"``, ``noun_embeds`` ``"<emotion> {noun}"``, ``negative`` the empty
    prompt. With g_n = g this is the stock pipeline's guidance, ε(∅) + g·(ε(c, noun) − ε(∅)), and gives its images
    (a test checks it). The loop is the stock pipeline's own steps (``prepare_latents``, the scheduler, the VAE,
    the image processor) with a third UNet branch.
    """
    steps, guidance, size = settings
    n = len(noun_embeds)
    context = torch.cat([negative.expand(n, -1, -1), base_embeds, noun_embeds]).to(device, sd.unet.dtype)
    generators = _seeded(seed, n)
    sd.scheduler.set_timesteps(steps, device=device)
    latents = sd.prepare_latents(n, sd.unet.config.in_channels, size, size, context.dtype, device, generators)
    extra = sd.prepare_extra_step_kwargs(generators, 0.0)
    for i, t in enumerate(sd.scheduler.timesteps):
        x = sd.scheduler.scale_model_input(torch.cat([latents] * 3), t)
        e_empty, e_base, e_noun = sd.unet(x, t, encoder_hidden_states=context).sample.chunk(3)
        eps = e_empty + guidance * (e_base - e_empty) + noun_guidance * (e_noun - e_base)
        latents = sd.scheduler.step(eps, t, latents, **extra).prev_sample
        if callback is not None:
            callback(i + 1, steps)
    image = sd.vae.decode(latents.to(sd.vae.dtype) / sd.vae.config.scaling_factor).sample
    # the stock pipeline's own safety check (a no-op without a checker), so no path skips it
    image, flagged = sd.run_safety_checker(image, device, context.dtype)
    do_denormalize = [True] * n if flagged is None else [not f for f in flagged]
    images = sd.image_processor.postprocess(image, output_type="pil", do_denormalize=do_denormalize)
    return mark_flagged(images, flagged)
