"""The one door for pretrained CLIP weights, and the frozen CLIP text tower for attribute embeddings.

Pretrained CLIP (image and text towers) is loaded with transformers' ``CLIPModel`` from a Hub id
(``openai/clip-vit-base-patch32``, ``openai/clip-vit-base-patch16``, ``openai/clip-vit-large-patch14``) when
online, or from a local folder in the transformers layout (``config.json`` + ``model.safetensors``) offline.
UniEmo-Tiny's own tiny CLIP is saved in that same layout, so the real and the tiny paths share this code.
OpenAI / open_clip state dicts (keys ``visual.conv1.weight`` ...) are also accepted by ``init_from_clip``,
since our classifier uses OpenAI's parameter names.

``init_from_clip`` is a plain key map with shape asserts (nanoGPT's ``from_pretrained`` idea): the only
function that knows the library's weight names.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import Tensor, nn

from uniemo.classifier import EmoClassifier, EmoClassifierConfig

logger = logging.getLogger(__name__)

# Hub ids of the OpenAI checkpoints for the classifier presets.
CLIP_HUB_IDS = {
    "vit-b-32": "openai/clip-vit-base-patch32",
    "vit-b-16": "openai/clip-vit-base-patch16",
    "vit-l-14": "openai/clip-vit-large-patch14",
}


def load_clip(name_or_path: str, device: str | torch.device = "cpu"):
    """Load a transformers ``CLIPModel`` and its tokenizer (Hub id or local folder), eval mode, frozen.

    Returns:
        (clip_model, tokenizer)
    """
    from transformers import CLIPModel, CLIPTokenizer

    path = Path(name_or_path)
    if name_or_path.startswith((".", "/", "~")) or path.exists():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"{name_or_path!r} is not a CLIP folder (no config.json); expected the transformers layout "
                "written by CLIPModel.save_pretrained"
            )
    try:
        model = CLIPModel.from_pretrained(name_or_path)
        tokenizer = CLIPTokenizer.from_pretrained(name_or_path)
    except OSError as e:
        raise OSError(
            f"could not load CLIP from {name_or_path!r}: {e}. Offline (HF_HUB_OFFLINE=1) only local folders "
            "or models already in the Hugging Face cache can be loaded."
        ) from e
    model.eval().requires_grad_(False).to(device)
    return model, tokenizer


def classifier_config_from_clip(vision_config, **overrides) -> EmoClassifierConfig:
    """An ``EmoClassifierConfig`` whose backbone geometry matches a transformers ``CLIPVisionConfig``."""
    if getattr(vision_config, "hidden_act", "quick_gelu") != "quick_gelu":
        raise ValueError(f"only quick_gelu CLIP vision towers are supported, got {vision_config.hidden_act}")
    geometry = dict(
        image_size=vision_config.image_size,
        patch_size=vision_config.patch_size,
        width=vision_config.hidden_size,
        layers=vision_config.num_hidden_layers,
        heads=vision_config.num_attention_heads,
        mlp_ratio=vision_config.intermediate_size / vision_config.hidden_size,
        layer_norm_eps=vision_config.layer_norm_eps,
    )
    geometry.update(overrides)
    return EmoClassifierConfig(**geometry)


def _strip(state: dict[str, Tensor], prefixes: tuple[str, ...]) -> dict[str, Tensor]:
    for prefix in prefixes:
        if any(k.startswith(prefix) for k in state):
            return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return state


def _map_transformers_keys(state: dict[str, Tensor], layers: int) -> dict[str, Tensor]:
    """transformers CLIPVisionModel / CLIPModel.vision_model names -> OpenAI names (ours)."""
    out = {
        "conv1.weight": state["embeddings.patch_embedding.weight"],
        "class_embedding": state["embeddings.class_embedding"],
        "positional_embedding": state["embeddings.position_embedding.weight"],
        "ln_pre.weight": state["pre_layrnorm.weight"],
        "ln_pre.bias": state["pre_layrnorm.bias"],
        "ln_post.weight": state["post_layernorm.weight"],
        "ln_post.bias": state["post_layernorm.bias"],
    }
    for i in range(layers):
        src, dst = f"encoder.layers.{i}.", f"transformer.resblocks.{i}."
        attn = src + "self_attn."
        # q, k, v packed in that order, as nn.MultiheadAttention / OpenAI CLIP store them
        out[dst + "attn.in_proj_weight"] = torch.cat([state[attn + f"{p}_proj.weight"] for p in "qkv"])
        out[dst + "attn.in_proj_bias"] = torch.cat([state[attn + f"{p}_proj.bias"] for p in "qkv"])
        out[dst + "attn.out_proj.weight"] = state[attn + "out_proj.weight"]
        out[dst + "attn.out_proj.bias"] = state[attn + "out_proj.bias"]
        for a, b in (("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"), ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2")):
            out[dst + a + ".weight"] = state[src + b + ".weight"]
            out[dst + a + ".bias"] = state[src + b + ".bias"]
    return out


def init_from_clip(model: EmoClassifier, source: nn.Module | dict[str, Tensor]) -> EmoClassifier:
    """Copy pretrained CLIP vision-tower weights into ``model``'s backbone (in place; returns ``model``).

    Args:
        source: a transformers ``CLIPModel`` / ``CLIPVisionModel`` (or its state dict), or an OpenAI /
            open_clip state dict (``visual.*`` keys). Queries, Interactive Blocks, projections and the head
            keep their own initialisation.
    """
    state = source.state_dict() if isinstance(source, nn.Module) else dict(source)
    if any("embeddings.patch_embedding.weight" in k for k in state):
        state = _strip(state, ("vision_model.",))
        mapped = _map_transformers_keys(state, model.config.layers)
    elif any(k.endswith("conv1.weight") for k in state):
        mapped = _strip(state, ("visual.",))
        mapped = {k: v for k, v in mapped.items() if k != "proj"}  # the joint projection is not used
    else:
        raise ValueError("unrecognised CLIP state dict: expected transformers or OpenAI/open_clip key names")
    own = model.state_dict()
    backbone = {k for k, _ in model.parameter_groups()["backbone"]}
    missing = sorted(backbone - set(mapped))
    if missing:
        raise ValueError(f"CLIP weights lack {len(missing)} backbone tensors, e.g. {missing[:3]}")
    with torch.no_grad():
        for key in backbone:
            if own[key].shape != mapped[key].shape:
                raise ValueError(
                    f"shape mismatch for {key}: classifier {tuple(own[key].shape)} vs CLIP "
                    f"{tuple(mapped[key].shape)}; build the classifier with classifier_config_from_clip()"
                )
            own[key].copy_(mapped[key])
    return model


def build_classifier_from_clip(name_or_path: str, **overrides) -> tuple[EmoClassifier, nn.Module, object]:
    """Load CLIP, build a classifier with its geometry (plus ``overrides``), copy the backbone weights.

    Returns:
        (classifier, clip_model, tokenizer); the CLIP model is frozen and kept for the text tower.
    """
    clip_model, tokenizer = load_clip(name_or_path)
    config = classifier_config_from_clip(
        clip_model.config.vision_config, proj_dim=clip_model.config.projection_dim, **overrides
    )
    classifier = init_from_clip(EmoClassifier(config), clip_model.vision_model)
    return classifier, clip_model, tokenizer


class AttributeTextEncoder:
    """The frozen CLIP text tower, embedding attribute strings once and caching them (METHOD.md section 3).

    ``embed(names)`` returns L2-normalised (N, proj_dim) text embeddings in CLIP's joint space, the targets
    of L_S and L_O. Raw attribute strings with no template, as the official code does.
    """

    def __init__(self, clip_model: nn.Module, tokenizer, batch_size: int = 256):
        self.clip_model = clip_model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self._cache: dict[str, Tensor] = {}

    @torch.no_grad()
    def embed(self, names: list[str]) -> Tensor:
        todo = [n for n in dict.fromkeys(names) if n not in self._cache]
        device = next(self.clip_model.parameters()).device
        for i in range(0, len(todo), self.batch_size):
            chunk = todo[i:i + self.batch_size]
            tokens = self.tokenizer(chunk, padding=True, truncation=True, return_tensors="pt").to(device)
            out = self.clip_model.get_text_features(**tokens)
            feats = out.pooler_output if hasattr(out, "pooler_output") else out
            feats = torch.nn.functional.normalize(feats.float(), dim=-1).cpu()
            self._cache.update(zip(chunk, feats))
        if not names:
            return torch.zeros(0, self.clip_model.config.projection_dim)
        return torch.stack([self._cache[n] for n in names])


def build_tiny_clip(
    image_size: int = 32, patch_size: int = 8, width: int = 32, layers: int = 6, heads: int = 2,
    text_width: int = 32, text_layers: int = 2, proj_dim: int = 32, seed: int = 0,
):
    """A randomly initialised transformers ``CLIPModel`` with the offline byte-level tokenizer.

    Used by the tests (saved with ``save_pretrained`` and loaded back through ``load_clip``, the same path
    as OpenAI CLIP) and as the starting point of UniEmo-Tiny's contrastive pretraining.

    Returns:
        (clip_model, tokenizer)
    """
    from transformers import CLIPConfig, CLIPModel

    from uniemo.diffusion import build_byte_tokenizer

    tokenizer = build_byte_tokenizer()
    special = dict(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
    )
    config = CLIPConfig(
        vision_config=dict(
            image_size=image_size, patch_size=patch_size, hidden_size=width, intermediate_size=4 * width,
            num_hidden_layers=layers, num_attention_heads=heads,
        ),
        text_config=dict(
            vocab_size=len(tokenizer), hidden_size=text_width, intermediate_size=4 * text_width,
            num_hidden_layers=text_layers, num_attention_heads=max(1, text_width // 16),
            max_position_embeddings=tokenizer.model_max_length, **special,
        ),
        projection_dim=proj_dim,
    )
    with torch.random.fork_rng(devices=[]):  # seeded without disturbing the caller's RNG
        torch.manual_seed(seed)
        model = CLIPModel(config)
    return model, tokenizer
