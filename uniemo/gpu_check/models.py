"""What the GPU check measures (``GpuCheckSettings``) and what it measures it on: the real models' geometry
with random weights (``uniemo.real_geometry``), or the tiny geometry for the CPU smoke run, and that geometry as
JSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from uniemo import real_geometry as rg
from uniemo.diffusion import TinySDConfig, build_tiny_stable_diffusion


@dataclass
class GpuCheckSettings:
    """What to measure: the defaults are the GPU run, ``smoke()`` the CPU run of the same code at tiny geometry."""

    precisions: tuple[str, ...] = ("bf16", "fp16")
    batches: tuple[int, ...] = (1, 8)
    checkpointing: tuple[bool, ...] = (False, True)
    warmup: int = 3  # untimed training steps per configuration
    steps: int = 5  # timed training steps per configuration
    resolution: int = 512
    generation_steps: int = 50
    generation_batches: tuple[int, ...] = (1, 4)
    generation_warmup: int = 1  # untimed rounds
    generation_rounds: int = 2  # timed rounds, each: UniEmo and stock, in alternating order
    fusion_hidden: int = 1024

    @classmethod
    def smoke(cls) -> GpuCheckSettings:
        return cls(batches=(1, 2), warmup=0, steps=1, resolution=32, generation_steps=2, generation_batches=(1, 2),
                   generation_warmup=0, generation_rounds=1, fusion_hidden=64)


def parameter_count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def build_models(settings: GpuCheckSettings, smoke: bool, seed: int = 0):
    """Classifier, fusion, SD pipeline and the random rest (``UniEmoParts``), float32 on the CPU."""
    if smoke:
        sd = build_tiny_stable_diffusion(TinySDConfig(image_size=settings.resolution), seed=seed)
        classifier = rg.build_classifier("tiny", seed=seed)
    else:
        sd = rg.build_sd15_pipeline(seed=seed)
        classifier = rg.build_vit_l14_classifier(seed=seed)
    text_width = sd.text_encoder.get_input_embeddings().embedding_dim
    fusion = rg.build_fusion(classifier.config, text_width=text_width, hidden_size=settings.fusion_hidden,
                             seed=seed)
    return rg.random_uniemo_parts(classifier, fusion, sd, seed=seed)


def geometry(parts) -> dict[str, Any]:
    """Sizes and parameter counts of the classifier, fusion, UNet, VAE and text encoder of ``parts``."""
    c, f, sd = parts.classifier.config, parts.fusion.config, parts.sd
    unet, vae, te = sd.unet.config, sd.vae.config, sd.text_encoder.config
    return {
        "classifier": {"preset": c.preset, "image_size": c.image_size, "patch_size": c.patch_size,
                       "width": c.width, "layers": c.layers, "heads": c.heads,
                       "queries": [c.num_scene_queries, c.num_object_queries],
                       "parameters": parameter_count(parts.classifier)},
        "fusion": {"vision_width": f.vision_width, "hidden_size": f.hidden_size, "text_width": f.text_width,
                   "parameters": parameter_count(parts.fusion)},
        "unet": {"block_out_channels": list(unet.block_out_channels), "layers_per_block": unet.layers_per_block,
                 "cross_attention_dim": unet.cross_attention_dim, "sample_size": unet.sample_size,
                 "parameters": parameter_count(sd.unet)},
        "vae": {"block_out_channels": list(vae.block_out_channels), "latent_channels": vae.latent_channels,
                "scaling_factor": vae.scaling_factor, "parameters": parameter_count(sd.vae)},
        "text_encoder": {"hidden_size": te.hidden_size, "layers": te.num_hidden_layers,
                         "heads": te.num_attention_heads, "vocab_size": te.vocab_size,
                         "tokenizer_size": len(sd.tokenizer), "placeholder_id": parts.placeholder_id,
                         "parameters": parameter_count(sd.text_encoder)},  # sizes with the placeholder's row
    }
