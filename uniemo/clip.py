"""The one door for pretrained CLIP weights, and the frozen CLIP text tower for attribute embeddings.

Pretrained CLIP (image and text towers) is loaded with transformers' ``CLIPModel`` from a Hub id
(``openai/clip-vit-base-patch32``, ``openai/clip-vit-base-patch16``, ``openai/clip-vit-large-patch14``) when
online, from a local folder in the transformers layout (``config.json`` + ``model.safetensors``) offline, or
from one OpenAI-format file (``ViT-B-32.pt`` as OpenAI released it, a TorchScript archive; or a plain state
dict in ``.pt`` / ``.safetensors`` with OpenAI's key names ``visual.conv1.weight``, ``token_embedding.weight``
...), which is converted to a ``CLIPModel`` on load and paired with the real BPE tokenizer.
UniEmo-Tiny's own tiny CLIP is saved in the transformers layout, so the real and the tiny paths share this code.
OpenAI / open_clip state dicts are also accepted by ``init_from_clip``, since our classifier uses OpenAI's
parameter names.

The name pairs below (``_tower_pairs``) are the only place that knows both libraries' weight names: a plain
key map with shape asserts (nanoGPT's ``from_pretrained`` idea), read in one direction by ``init_from_clip``
and in the other by the OpenAI-file loader.
"""

from __future__ import annotations

import logging
import re
import warnings
import zipfile
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor, nn
from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

from uniemo.classifier import EmoClassifier, EmoClassifierConfig
from uniemo.diffusion import build_byte_tokenizer, build_clip_bpe_tokenizer
from uniemo.training.checks import CLIP_FILE_SUFFIXES

logger = logging.getLogger(__name__)

# Hub ids of the OpenAI checkpoints for the classifier presets.
CLIP_HUB_IDS = {
    "vit-b-32": "openai/clip-vit-base-patch32",
    "vit-b-16": "openai/clip-vit-base-patch16",
    "vit-l-14": "openai/clip-vit-large-patch14",
}


def load_clip(name_or_path: str, device: str | torch.device = "cpu"):
    """Load a transformers ``CLIPModel`` and its tokenizer, eval mode, frozen.

    Args:
        name_or_path: a Hub id, a local folder in the transformers layout, or an OpenAI-format file
            (``.pt`` TorchScript archive or state dict, ``.safetensors`` state dict; see ``load_openai_clip``).

    Returns:
        (clip_model, tokenizer)
    """
    path = Path(name_or_path).expanduser()
    if path.is_file():
        model, tokenizer = load_openai_clip(path)
    else:
        if name_or_path.startswith((".", "/", "~")) or path.exists():
            if not (path / "config.json").is_file():
                raise FileNotFoundError(
                    f"{name_or_path!r} is neither a CLIP folder (no config.json; expected the transformers layout "
                    "written by CLIPModel.save_pretrained) nor an OpenAI-format file "
                    f"({', '.join(CLIP_FILE_SUFFIXES)})"
                )
            name_or_path = str(path)
        try:
            model = CLIPModel.from_pretrained(name_or_path)
            tokenizer = CLIPTokenizer.from_pretrained(name_or_path)
        except OSError as e:
            raise OSError(
                f"could not load CLIP from {name_or_path!r}: {e}. Offline (HF_HUB_OFFLINE=1) only local folders, "
                "OpenAI-format files or models already in the Hugging Face cache can be loaded."
            ) from e
    model.eval().requires_grad_(False).to(device)
    return model, tokenizer


def read_openai_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The tensors of an OpenAI-format CLIP file, never unpickling arbitrary objects.

    ``.safetensors`` is read with safetensors; a ``.pt`` that is a TorchScript archive (OpenAI's releases)
    with ``torch.jit.load``, otherwise with ``torch.load(weights_only=True)`` (a plain state dict, or an
    open_clip training checkpoint ``{"state_dict": {"module.visual...": ...}}``).
    """
    path = Path(path)
    if path.suffix not in CLIP_FILE_SUFFIXES:
        raise ValueError(f"{str(path)!r}: an OpenAI-format CLIP file ends in {', '.join(CLIP_FILE_SUFFIXES)}")
    if path.suffix == ".safetensors":
        return load_file(path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:  # what torch.load itself checks to recognise TorchScript
            scripted = any(name.rsplit("/", 1)[-1] == "constants.pkl" for name in archive.namelist())
        if scripted:
            with warnings.catch_warnings():  # TorchScript is deprecated, but OpenAI's files are TorchScript
                warnings.simplefilter("ignore", FutureWarning)
                return dict(torch.jit.load(str(path), map_location="cpu").state_dict())
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = _strip(state["state_dict"], ("module.",))
    if not isinstance(state, dict):
        raise ValueError(f"{str(path)!r} holds a {type(state).__name__}, not a CLIP state dict")
    return state


def openai_clip_config(state: dict[str, Tensor]):
    """A transformers ``CLIPConfig`` with the geometry of an OpenAI-format ViT CLIP state dict.

    Read from the tensor shapes as OpenAI's ``build_model`` (and open_clip's
    ``build_model_from_openai_state_dict``) do; neither format stores head counts, so both towers have
    OpenAI's 64-wide heads. The special-token ids are the BPE tokenizer's.
    """
    if "visual.proj" not in state:
        kind = "a ResNet CLIP (visual.layer1 ...)" if any(k.startswith("visual.layer1.") for k in state) else \
            "not an OpenAI-format CLIP (no visual.proj)"
        raise ValueError(f"the file holds {kind}; only ViT CLIPs convert to transformers' CLIPModel")

    def layers(prefix: str) -> int:
        pattern = re.compile(re.escape(prefix) + r"transformer\.resblocks\.(\d+)\.attn\.in_proj_weight")
        return len({m.group(1) for m in map(pattern.fullmatch, state) if m})

    def heads(width: int, tower: str) -> int:
        if width % 64:
            raise ValueError(f"the {tower} width {width} is not a multiple of OpenAI's head width 64")
        return width // 64

    width, _, patch, _ = state["visual.conv1.weight"].shape
    grid = round((state["visual.positional_embedding"].shape[0] - 1) ** 0.5)
    text_width = state["ln_final.weight"].shape[0]
    vocab_size, context_length = state["token_embedding.weight"].shape[0], state["positional_embedding"].shape[0]
    if vocab_size != 49408:
        raise ValueError(f"the text tower has {vocab_size} tokens; OpenAI's BPE tokenizer has 49408")
    vision_layers, text_layers = layers("visual."), layers("")
    return CLIPConfig(
        vision_config=dict(
            image_size=patch * grid, patch_size=patch, hidden_size=width, num_hidden_layers=vision_layers,
            num_attention_heads=heads(width, "vision"), hidden_act="quick_gelu",
            intermediate_size=state["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
        ),
        text_config=dict(
            vocab_size=vocab_size, max_position_embeddings=context_length, hidden_size=text_width,
            num_hidden_layers=text_layers, num_attention_heads=heads(text_width, "text"), hidden_act="quick_gelu",
            intermediate_size=state["transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
            bos_token_id=49406, eos_token_id=49407, pad_token_id=49407,
        ),
        projection_dim=state["text_projection"].shape[1],
    )


def load_openai_clip(path: str | Path):
    """An OpenAI-format CLIP file as a transformers ``CLIPModel`` (fp32) and the real 49 408-token tokenizer.

    Returns:
        (clip_model, tokenizer); ``load_clip`` puts the model in eval mode and freezes it.
    """
    state = read_openai_state_dict(path)
    config = openai_clip_config(state)
    layers = config.vision_config.num_hidden_layers, config.text_config.num_hidden_layers
    try:
        mapped = _map_openai_keys(state, *layers)
    except KeyError as e:
        raise ValueError(f"{str(path)!r} lacks the CLIP tensor {e.args[0]!r}") from None
    model = CLIPModel(config)
    model.load_state_dict({k: v.float() for k, v in mapped.items()}, strict=True)  # OpenAI's files are fp16
    tokenizer = build_clip_bpe_tokenizer(model_max_length=config.text_config.max_position_embeddings)
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


# (OpenAI name, transformers name) of each tower's tensors outside the residual blocks
_VISION_STEM = (
    ("conv1.weight", "embeddings.patch_embedding.weight"),
    ("class_embedding", "embeddings.class_embedding"),
    ("positional_embedding", "embeddings.position_embedding.weight"),
    ("ln_pre.weight", "pre_layrnorm.weight"), ("ln_pre.bias", "pre_layrnorm.bias"),
    ("ln_post.weight", "post_layernorm.weight"), ("ln_post.bias", "post_layernorm.bias"),
)
_TEXT_STEM = (
    ("token_embedding.weight", "embeddings.token_embedding.weight"),
    ("positional_embedding", "embeddings.position_embedding.weight"),
    ("ln_final.weight", "final_layer_norm.weight"), ("ln_final.bias", "final_layer_norm.bias"),
)
_BLOCK = (("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"), ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2"),
          ("attn.out_proj", "self_attn.out_proj"), ("attn.in_proj", "self_attn.{}_proj"))


def _tower_pairs(stem: tuple[tuple[str, str], ...], layers: int) -> list[tuple[str, str]]:
    """(OpenAI name, transformers name) of every tensor of one tower (names relative to the tower).

    A transformers name with ``{}`` stands for its q, k and v tensors, which OpenAI packs into one ``in_proj``
    (in that order, as ``nn.MultiheadAttention`` does); OpenAI writes ``in_proj_weight``, not ``in_proj.weight``.
    """
    pairs = list(stem)
    for i in range(layers):
        for a, b in _BLOCK:
            for p in ("weight", "bias"):
                openai = f"transformer.resblocks.{i}.{a}{'_' if a == 'attn.in_proj' else '.'}{p}"
                pairs.append((openai, f"encoder.layers.{i}.{b}.{p}"))
    return pairs


def _map_transformers_keys(state: dict[str, Tensor], layers: int) -> dict[str, Tensor]:
    """transformers CLIPVisionModel / CLIPModel.vision_model names -> OpenAI names (ours)."""
    return {openai: torch.cat([state[hf.format(p)] for p in "qkv"]) if "{}" in hf else state[hf]
            for openai, hf in _tower_pairs(_VISION_STEM, layers)}


def _map_openai_keys(state: dict[str, Tensor], vision_layers: int, text_layers: int) -> dict[str, Tensor]:
    """A whole OpenAI-format CLIP state dict -> transformers ``CLIPModel`` names."""
    out = {"logit_scale": state["logit_scale"],
           # OpenAI's projections are (width, proj) matrices applied as x @ proj; nn.Linear stores the transpose
           "visual_projection.weight": state["visual.proj"].t(),
           "text_projection.weight": state["text_projection"].t()}
    for openai_prefix, hf_prefix, stem, layers in (("visual.", "vision_model.", _VISION_STEM, vision_layers),
                                                   ("", "text_model.", _TEXT_STEM, text_layers)):
        for openai, hf in _tower_pairs(stem, layers):
            tensor = state[openai_prefix + openai]
            if "{}" in hf:
                out.update({hf_prefix + hf.format(p): t for p, t in zip("qkv", tensor.chunk(3))})
            else:
                out[hf_prefix + hf] = tensor
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
    """The frozen CLIP text tower, embedding attribute strings once and caching them (docs/method.md section 3).

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
