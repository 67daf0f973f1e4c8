"""A tiny Qwen2-VL: the real architecture (transformers' ``Qwen2VLForConditionalGeneration``) at a size a CPU
trains in minutes, with a byte-level BPE tokenizer learnt from the world's own texts (``tokenizers``) and
Qwen2-VL's special tokens. In the synthetic world it stands in for the pretrained MLLM.

Geometry (``TinyMLLMConfig``): 64-px images cut into 8-px patches, merged 2 x 2 into 16 image tokens; a vision
tower of width 32 and 2 layers; a language model of width 64, 2 layers, 4 query heads and 2 key/value heads,
multimodal RoPE split (2, 3, 3) over the head's 8 frequency pairs (as 2B's (16, 24, 24) over 64).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (Qwen2TokenizerFast, Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLImageProcessor,
                          Qwen2VLProcessor, Qwen2VLVideoProcessor)

from uniemo.emosym.mllm import QUESTION, SYSTEM

# Qwen2-VL's own special tokens, which its processor and config refer to
QWEN_SPECIAL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                "<|image_pad|>", "<|video_pad|>")


@dataclass
class TinyMLLMConfig:
    image_size: int = 64
    patch_size: int = 8
    merge_size: int = 2
    vision_width: int = 32
    vision_layers: int = 2
    vision_heads: int = 2
    width: int = 64
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    intermediate: int = 128
    mrope_section: tuple[int, int, int] = (2, 3, 3)
    vocab_size: int = 600  # the BPE's target size (fewer if the texts hold fewer merges)
    extra_texts: list[str] = field(default_factory=list)


def train_tokenizer(texts: Iterable[str], vocab_size: int):
    """A byte-level BPE learnt from ``texts`` (plus the prompt), wrapped as transformers' Qwen2 tokenizer."""
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(QWEN_SPECIAL), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator([*texts, QUESTION, SYSTEM, "system", "user", "assistant"], trainer)
    return Qwen2TokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                              unk_token=None)


def build_tiny_processor(texts: Iterable[str], cfg: TinyMLLMConfig | None = None):
    """The Qwen2-VL processor: the learnt tokenizer and image/video processors at the tiny geometry. Every image
    is resized to ``image_size`` squared (min = max pixels)."""
    c = cfg or TinyMLLMConfig()
    pixels = c.image_size * c.image_size
    geometry = dict(patch_size=c.patch_size, merge_size=c.merge_size, temporal_patch_size=2)
    image = Qwen2VLImageProcessor(**geometry, min_pixels=pixels, max_pixels=pixels)
    video = Qwen2VLVideoProcessor(**geometry, min_pixels=pixels, max_pixels=pixels)
    return Qwen2VLProcessor(image_processor=image, video_processor=video,
                            tokenizer=train_tokenizer([*texts, *c.extra_texts], c.vocab_size))


def build_tiny_qwen2vl(processor, cfg: TinyMLLMConfig | None = None, seed: int = 0):
    """A randomly initialised ``Qwen2VLForConditionalGeneration`` for ``processor``'s tokenizer."""
    c = cfg or TinyMLLMConfig()
    tok = processor.tokenizer
    ids = dict(zip(("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id"),
                   tok.convert_tokens_to_ids(["<|image_pad|>", "<|video_pad|>", "<|vision_start|>",
                                              "<|vision_end|>"])))
    if c.width // c.heads // 2 != sum(c.mrope_section):
        raise ValueError(f"mrope_section {c.mrope_section} must sum to half the head width "
                         f"({c.width // c.heads // 2})")
    config = Qwen2VLConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=c.width, intermediate_size=c.intermediate,
                         num_hidden_layers=c.layers, num_attention_heads=c.heads, num_key_value_heads=c.kv_heads,
                         max_position_embeddings=1024, rms_norm_eps=1e-6, pad_token_id=tok.pad_token_id,
                         bos_token_id=None, eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                          "mrope_section": list(c.mrope_section)}),
        vision_config=dict(depth=c.vision_layers, embed_dim=c.vision_width, hidden_size=c.width,
                           num_heads=c.vision_heads, patch_size=c.patch_size, spatial_merge_size=c.merge_size,
                           temporal_patch_size=2),
        tie_word_embeddings=True, **ids)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Qwen2VLForConditionalGeneration(config)
