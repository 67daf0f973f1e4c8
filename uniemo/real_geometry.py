"""The real models' geometry with random weights: Stable Diffusion 1.5 and the ViT-L/14 UniEmo classifier.

Nothing is downloaded: every module is built from its constructor with the published config values, so that
speed and memory can be measured at full size on any machine (``eval/gpu_check.py``), and so that shape bugs
that only the real sizes bring show up without the weights.

- ``sd15_unet_config`` / ``sd15_vae_config`` / ``sd15_scheduler_config`` / ``sd15_text_encoder_config``: the
  values of SD 1.5's ``unet/``, ``vae/``, ``scheduler/`` and ``text_encoder/`` ``config.json`` (the text encoder
  is CLIP ViT-L/14's text tower: width 768, 12 layers, 12 heads, vocabulary 49 408, with SD 1.5's legacy
  special-token ids).
- ``build_sd15_pipeline``: those parts assembled as a diffusers ``StableDiffusionPipeline`` with the real BPE
  tokenizer (``uniemo.diffusion.build_clip_bpe_tokenizer``), PNDM as SD 1.5 ships it, no safety checker.
- ``build_classifier`` / ``build_vit_l14_classifier``: ``EmoClassifier`` at a preset's geometry
  (``uniemo.classifier.BACKBONE_PRESETS``; ViT-L/14: width 1024, 24 layers, 16 heads, patch 14, 224 px).
- ``build_fusion``: ``EmoFusion`` from a classifier's width to a text encoder's (768 for SD 1.5).
- ``qwen2vl_2b_config`` / ``build_qwen2vl_2b``: Qwen2-VL-2B-Instruct's ``config.json`` values (language model
  width 1536, 28 layers, 12 query and 2 key/value heads, vocabulary 151 936, tied embeddings, multimodal RoPE
  sections (16, 24, 24); vision tower width 1280, 32 layers, patch 14, merged 2 x 2), EmoSym's MLLM, as a
  transformers ``Qwen2VLForConditionalGeneration`` (about 2.21 B parameters).
- ``random_uniemo_parts``: the random emotion space, attribute base and α table that turn a classifier, a
  fusion and a Stable Diffusion pipeline into a working ``UniEmoPipeline`` (``UniEmoParts.pipeline``).

Every builder takes a ``seed`` (the caller's random stream is left untouched) and a ``device``: ``"meta"``
builds the shapes alone, with no memory and no initialisation cost (config and parameter-count checks).
SD 1.5's parts hold 859 520 964 (UNet), 83 653 863 (VAE) and 123 060 480 (text encoder) parameters.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch
from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from uniemo.attributes import AttributeTargets
from uniemo.classifier import EmoClassifier, EmoClassifierConfig
from uniemo.correlation import CorrelationTable
from uniemo.diffusion import add_placeholder_token, build_clip_bpe_tokenizer
from uniemo.emotion_space import KINDS, EmotionSpace
from uniemo.fusion import EmoFusion, EmoFusionConfig
from uniemo.pipeline import UniEmoPipeline

SD15_RESOLUTION = 512  # pixels; the UNet works on 64x64 latents (the VAE downsamples by 8)


def sd15_unet_config(layers_per_block: int = 2) -> dict[str, Any]:
    """``UNet2DConditionModel`` arguments of SD 1.5 (``layers_per_block`` may be lowered for a cheaper model)."""
    return dict(
        sample_size=64, in_channels=4, out_channels=4, center_input_sample=False, flip_sin_to_cos=True,
        freq_shift=0,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(320, 640, 1280, 1280), layers_per_block=layers_per_block, downsample_padding=1,
        mid_block_scale_factor=1, act_fn="silu", norm_num_groups=32, norm_eps=1e-5, cross_attention_dim=768,
        attention_head_dim=8,
    )


def sd15_vae_config() -> dict[str, Any]:
    """``AutoencoderKL`` arguments of SD 1.5."""
    return dict(
        sample_size=SD15_RESOLUTION, in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
        act_fn="silu", norm_num_groups=32, block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        scaling_factor=0.18215,
    )


def sd15_scheduler_config() -> dict[str, Any]:
    """SD 1.5's ``scheduler/scheduler_config.json`` (PNDM; DDPM, DDIM and UniPC are made ``from_config`` of it)."""
    return dict(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        trained_betas=None, clip_sample=False, set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1,
    )


def sd15_text_encoder_config() -> dict[str, Any]:
    """``CLIPTextConfig`` arguments of SD 1.5's text encoder (CLIP ViT-L/14's text tower)."""
    return dict(
        vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
        max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=768,
        bos_token_id=0, eos_token_id=2, pad_token_id=1,
    )


@contextlib.contextmanager
def _seeded(seed: int, device: str | torch.device | None):
    """Seed the initialisation without moving the caller's random stream; build on ``device`` when given."""
    with torch.random.fork_rng(devices=[]), (torch.device(device) if device is not None
                                             else contextlib.nullcontext()):
        torch.manual_seed(seed)
        yield


def build_sd15_pipeline(seed: int = 0, layers_per_block: int = 2,
                        device: str | torch.device | None = None) -> StableDiffusionPipeline:
    """SD 1.5 with random weights: its UNet, VAE, text encoder and PNDM scheduler configs, the real tokenizer.

    Args:
        seed: seeds each component's initialisation.
        layers_per_block: the UNet's (2 in SD 1.5; 1 halves most of its blocks for a cheaper stand-in).
        device: where to build (default: the current default device, normally the CPU); ``"meta"`` for shapes
            only.

    Returns:
        A float32 ``StableDiffusionPipeline`` without safety checker (about 1.07 B parameters, 4.3 GB).
    """
    with _seeded(seed, device):
        unet = UNet2DConditionModel(**sd15_unet_config(layers_per_block))
    with _seeded(seed + 1, device):
        vae = AutoencoderKL(**sd15_vae_config())
    with _seeded(seed + 2, device):
        text_encoder = CLIPTextModel(CLIPTextConfig(**sd15_text_encoder_config()))
    return StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=build_clip_bpe_tokenizer(), unet=unet,
        scheduler=PNDMScheduler.from_config(sd15_scheduler_config()), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)


# Qwen2-VL's special tokens (its tokenizer's added tokens): the ids the model's config refers to
QWEN2VL_TOKEN_IDS = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645,
                     "<|vision_start|>": 151652, "<|vision_end|>": 151653, "<|image_pad|>": 151655,
                     "<|video_pad|>": 151656}
QWEN2VL_TOKENIZER_SIZE = 151657  # the tokenizer's length; the embedding has 151 936 rows (room for added tokens)


def qwen2vl_2b_config() -> dict[str, Any]:
    """Qwen2-VL-2B-Instruct's config.json values (transformers 5 layout: ``text_config`` and ``vision_config``)."""
    return dict(
        text_config=dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                         num_attention_heads=12, num_key_value_heads=2, hidden_act="silu",
                         max_position_embeddings=32768, rms_norm_eps=1e-6, use_sliding_window=False,
                         sliding_window=32768, max_window_layers=28, attention_dropout=0.0,
                         bos_token_id=151643, eos_token_id=151645,
                         rope_parameters={"rope_type": "default", "rope_theta": 1000000.0,
                                          "mrope_section": [16, 24, 24]}),
        vision_config=dict(depth=32, embed_dim=1280, hidden_size=1536, hidden_act="quick_gelu", mlp_ratio=4,
                           num_heads=16, in_channels=3, patch_size=14, spatial_merge_size=2, temporal_patch_size=2),
        image_token_id=QWEN2VL_TOKEN_IDS["<|image_pad|>"], video_token_id=QWEN2VL_TOKEN_IDS["<|video_pad|>"],
        vision_start_token_id=QWEN2VL_TOKEN_IDS["<|vision_start|>"],
        vision_end_token_id=QWEN2VL_TOKEN_IDS["<|vision_end|>"], tie_word_embeddings=True)


def build_qwen2vl_2b(seed: int = 0, device: str | torch.device | None = None,
                     dtype: torch.dtype = torch.bfloat16):
    """Qwen2-VL-2B-Instruct with random weights (transformers' own class), in ``dtype`` (bf16 as EmoSym trains
    it: about 4.4 GB); ``device="meta"`` for the shapes alone."""
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    config = Qwen2VLConfig(**qwen2vl_2b_config())
    with _seeded(seed, device):
        return Qwen2VLForConditionalGeneration._from_config(config, dtype=dtype)


def build_classifier(preset: str = "vit-l-14", seed: int = 0, device: str | torch.device | None = None,
                     variant: str = "paper", **overrides) -> EmoClassifier:
    """``EmoClassifier`` at a preset's geometry (``EmoClassifierConfig.from_preset``), random weights."""
    config = EmoClassifierConfig.from_preset(preset, variant=variant, **overrides)
    with _seeded(seed, device):
        return EmoClassifier(config)


def build_vit_l14_classifier(seed: int = 0, device: str | torch.device | None = None, variant: str = "paper",
                             **overrides) -> EmoClassifier:
    """The UniEmo classifier on CLIP ViT-L/14's geometry (the paper's and the released code's backbone)."""
    return build_classifier("vit-l-14", seed, device, variant, **overrides)


def build_fusion(classifier_config: EmoClassifierConfig, text_width: int = 768, hidden_size: int = 1024,
                 seed: int = 0, device: str | torch.device | None = None) -> EmoFusion:
    """``EmoFusion`` from the classifier's width to the diffusion text width (768 for SD 1.5), random weights."""
    config = EmoFusionConfig(vision_width=classifier_config.width, hidden_size=hidden_size, text_width=text_width,
                             num_classes=classifier_config.num_classes, emotions=classifier_config.emotions)
    with _seeded(seed, device):
        return EmoFusion(config)


@dataclass
class UniEmoParts:
    """Everything a ``UniEmoPipeline`` holds; the emotion space, attributes and α table are random."""

    classifier: EmoClassifier
    fusion: EmoFusion
    emotion_space: EmotionSpace
    attributes: AttributeTargets
    correlation: CorrelationTable
    sd: StableDiffusionPipeline
    placeholder_id: int

    def pipeline(self, resolution: int = SD15_RESOLUTION, info: dict | None = None) -> UniEmoPipeline:
        """The parts as a ``UniEmoPipeline`` (it puts the classifier and fusion in eval mode and switches the SD
        pipeline's sampler to its default, UniPC)."""
        return UniEmoPipeline(self.classifier, self.fusion, self.emotion_space, self.attributes, self.sd,
                              self.placeholder_id, self.correlation, resolution=resolution,
                              info={"name": "random weights", **(info or {})})


def random_uniemo_parts(classifier: EmoClassifier, fusion: EmoFusion, sd: StableDiffusionPipeline, seed: int = 0,
                        num_scenes: int = 16, num_objects: int = 32) -> UniEmoParts:
    """Complete a classifier, a fusion and a Stable Diffusion pipeline with random data.

    Adds the placeholder token to ``sd``'s tokenizer and text encoder (``uniemo.diffusion.add_placeholder_token``),
    fits an emotion space on random features (4 per emotion), and makes an attribute base of ``num_scenes``
    scene and ``num_objects`` object names with random unit text embeddings (including the released code's
    dummy texts) and a random α table over it.
    """
    config = classifier.config
    emotions, dim = tuple(config.emotions), config.proj_dim
    placeholder_id = add_placeholder_token(sd.tokenizer, sd.text_encoder)
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(len(emotions)).repeat(4)
    features = {k: torch.randn(len(labels), config.width, generator=g) for k in KINDS}
    space = EmotionSpace.fit(features, labels, emotions)

    def unit(n: int) -> torch.Tensor:
        return torch.nn.functional.normalize(torch.randn(n, dim, generator=g), dim=-1)

    scenes = [f"scene {i}" for i in range(num_scenes)]
    objects = [f"object {i}" for i in range(num_objects)]
    scene_embeds, object_embeds = unit(num_scenes), unit(num_objects)
    attributes = AttributeTargets(scenes, objects, scene_embeds, object_embeds, dummy_embeds=unit(2))
    correlation = CorrelationTable(
        scenes, objects, scene_embeds, object_embeds,
        torch.rand(num_scenes, len(emotions), generator=g).softmax(-1),
        torch.rand(num_objects, len(emotions), generator=g).softmax(-1),
        [1] * num_scenes, [1] * num_objects, emotions)
    return UniEmoParts(classifier, fusion, space, attributes, correlation, sd, placeholder_id)
