"""Stable Diffusion plumbing: tokenizers, the tiny test SD, loading, and condition injection (docs/method.md sections 5-6).

This is the only module that touches diffusers / transformers text-encoder internals. It holds:

- ``build_byte_tokenizer`` / ``build_clip_bpe_tokenizer``: CLIP tokenizers built in code, offline
 . The byte-level one (514 tokens) serves tiny models; the BPE one rebuilds the
  real 49 408-token OpenAI CLIP / SD 1.5 vocabulary from the BPE file bundled in the open_clip wheel.
- ``TinySDConfig`` / ``build_tiny_stable_diffusion``: a CPU-sized Stable Diffusion assembled from
  constructor arguments, as diffusers' pipeline tests build their dummy components.
- ``load_stable_diffusion``: the one loading path, for SD 1.5 (a Hub id or a local diffusers folder) and
  for a tiny SD written with ``save_pretrained`` alike.
- ``add_placeholder_token``: adds ``<emotion>`` to the tokenizer and a row for it to the text encoder.
- ``encode_condition``: the paper's injection (Sec. III-B): each sample's fused condition c replaces the
  placeholder's token embedding, per sample and differentiably, and the text encoder turns the result into
  ``prompt_embeds``. ``encode_prompt`` is the same path without substitution.

Paper -> code: c -> ``condition`` (B, C), the special token S* -> ``PLACEHOLDER_TOKEN`` /
``placeholder_id``, the text encoder's output that conditions the UNet -> ``prompt_embeds`` (B, 77, C).
C is the text encoder width, 768 for SD 1.5 (= the UNet's ``cross_attention_dim``).

Why a forward hook and not ``inputs_embeds``: transformers 5.x ``CLIPTextModel.forward`` accepts only
``input_ids``. A hook on the token-embedding module that exists only for the duration
of one call swaps the placeholder rows of *that call's* embedding output; the shared embedding table is
never written (the official code writes c into the table, which forces batch size 1; we don't copy that).
"""

from __future__ import annotations

import contextvars
import gzip
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel, UniPCMultistepScheduler
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from uniemo.constants import PLACEHOLDER_TOKEN

# OpenAI CLIP's special tokens (SD 1.5 uses the same strings and, in the full vocabulary, ids 49406 / 49407).
BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"
# CLIP's vocabulary holds 49 152 BPE entries: 256 bytes + 256 end-of-word bytes + the merges + 2 specials.
_CLIP_NUM_MERGES = 49152 - 256 - 2

SD15_MODEL_ID = "stable-diffusion-v1-5/stable-diffusion-v1-5"


def _byte_symbols() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for raw bytes, in CLIP's vocabulary order.

    Bytes that are already visible, non-space Latin-1 characters stand for themselves; the remaining 68
    (control characters, space, a few Latin-1 gaps) are shifted to code points 256, 257, ... in byte order,
    so every byte has a printable symbol and whitespace never appears inside a token.
    """
    visible = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    visible += range(ord("®"), ord("ÿ") + 1)
    visible_set = set(visible)
    shifted = [b for b in range(256) if b not in visible_set]
    return [chr(b) for b in visible] + [chr(256 + i) for i in range(len(shifted))]


def _clip_vocab(merges: list[tuple[str, str]]) -> dict[str, int]:
    """CLIP's vocabulary order: bytes, bytes + ``</w>``, one entry per merge, then BOS and EOS."""
    symbols = _byte_symbols()
    tokens = (
        symbols + [s + "</w>" for s in symbols] + ["".join(pair) for pair in merges] + [BOS_TOKEN, EOS_TOKEN]
    )
    return {token: i for i, token in enumerate(tokens)}


def build_byte_tokenizer(model_max_length: int = 77) -> CLIPTokenizer:
    """The 514-token byte-level CLIP tokenizer for tiny models (no merges, no files).

    Every character becomes one token (the last one of a word carries ``</w>``), so any text encodes
    without unknown tokens and the tiny text encoder's vocabulary stays small. As with every CLIP tokenizer,
    text is lower-cased and punctuation is split off as its own word.

    Args:
        model_max_length: the padded prompt length (77, as in SD).

    Returns:
        A ``CLIPTokenizer`` with ids 0-511 for the byte symbols, 512 for BOS and 513 for EOS (also padding).
    """
    return CLIPTokenizer(vocab=_clip_vocab([]), merges=[], model_max_length=model_max_length)


def _open_clip_bpe_path() -> Path:
    # Locate the file without importing open_clip (whose import pulls in timm and torchvision).
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "open_clip_torch is required to rebuild the CLIP BPE tokenizer (pip install open_clip_torch)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "bpe_simple_vocab_16e6.txt.gz"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; the open_clip_torch install looks incomplete")
    return path


def build_clip_bpe_tokenizer(model_max_length: int = 77) -> CLIPTokenizer:
    """The real 49 408-token OpenAI CLIP tokenizer (identical ids to SD 1.5's), rebuilt offline.

    Reads the merges from open_clip's bundled ``bpe_simple_vocab_16e6.txt.gz``: line 0
    is a header, the next 48 894 lines are the merges CLIP uses.

    Args:
        model_max_length: the padded prompt length (77, as in SD).

    Returns:
        A ``CLIPTokenizer``; ``"a photo of a dog"`` -> ``[49406, 320, 1125, 539, 320, 1929, 49407]``.
    """
    with gzip.open(_open_clip_bpe_path(), "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")[1 : _CLIP_NUM_MERGES + 1]
    merges = [tuple(line.split()) for line in lines]
    return CLIPTokenizer(vocab=_clip_vocab(merges), merges=merges, model_max_length=model_max_length)


@dataclass
class TinySDConfig:
    """Sizes of the tiny Stable Diffusion (defaults: a 32-px model that samples in about a second on CPU).

    The text encoder width equals ``cross_attention_dim``, as in SD, and its vocabulary is the byte-level
    tokenizer's. The scheduler is SD 1.5's beta schedule, so a DDPM scheduler made ``from_config`` of it
    trains with the right noise levels.
    """

    image_size: int = 32  # pixels; the UNet works at image_size / 2**(len(vae_block_out_channels) - 1)
    # UNet
    unet_block_out_channels: tuple[int, ...] = (32, 64)
    down_block_types: tuple[str, ...] = ("DownBlock2D", "CrossAttnDownBlock2D")
    up_block_types: tuple[str, ...] = ("CrossAttnUpBlock2D", "UpBlock2D")
    layers_per_block: int = 1
    attention_head_dim: int = 4
    cross_attention_dim: int = 32
    norm_num_groups: int = 32  # shared by UNet and VAE; must divide every block width
    # VAE
    vae_block_out_channels: tuple[int, ...] = (32, 64)
    latent_channels: int = 4
    # text encoder (width = cross_attention_dim)
    text_num_layers: int = 2
    text_num_heads: int = 4
    text_intermediate_size: int = 37
    model_max_length: int = 77

    def validate(self) -> None:
        """Raise ValueError, saying what to change, if the sizes cannot build a model."""
        n = len(self.unet_block_out_channels)
        if len(self.down_block_types) != n or len(self.up_block_types) != n:
            raise ValueError(
                f"down_block_types and up_block_types need one entry per unet_block_out_channels ({n}), "
                f"got {len(self.down_block_types)} and {len(self.up_block_types)}"
            )
        widths = (*self.unet_block_out_channels, *self.vae_block_out_channels)
        if any(w % self.norm_num_groups for w in widths):
            raise ValueError(f"norm_num_groups={self.norm_num_groups} must divide every block width {widths}")
        if self.cross_attention_dim % self.text_num_heads:
            raise ValueError(
                f"cross_attention_dim={self.cross_attention_dim} must be divisible by "
                f"text_num_heads={self.text_num_heads}"
            )
        if self.image_size % self.vae_scale_factor:
            raise ValueError(
                f"image_size={self.image_size} must be divisible by the VAE factor {self.vae_scale_factor}"
            )

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae_block_out_channels) - 1)


def build_tiny_stable_diffusion(config: TinySDConfig | None = None, seed: int = 0) -> StableDiffusionPipeline:
    """Assemble a randomly initialised Stable Diffusion pipeline from ``config`` (no download).

    Args:
        config: the sizes; ``TinySDConfig()`` when omitted.
        seed: seeds every component's initialisation; the global RNG state is left untouched.

    Returns:
        A ``StableDiffusionPipeline`` with UniPC for sampling (the official default sampler), no safety
        checker, and the byte-level tokenizer. ``save_pretrained`` writes an ordinary diffusers folder.
    """
    config = config or TinySDConfig()
    config.validate()
    tokenizer = build_byte_tokenizer(config.model_max_length)
    # fork_rng: building a test model must not shift the caller's random stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=config.image_size // config.vae_scale_factor,
            in_channels=config.latent_channels,
            out_channels=config.latent_channels,
            block_out_channels=config.unet_block_out_channels,
            down_block_types=config.down_block_types,
            up_block_types=config.up_block_types,
            layers_per_block=config.layers_per_block,
            attention_head_dim=config.attention_head_dim,
            cross_attention_dim=config.cross_attention_dim,
            norm_num_groups=config.norm_num_groups,
        )
        torch.manual_seed(seed)
        n_vae = len(config.vae_block_out_channels)
        vae = AutoencoderKL(
            sample_size=config.image_size,
            in_channels=3,
            out_channels=3,
            block_out_channels=config.vae_block_out_channels,
            down_block_types=("DownEncoderBlock2D",) * n_vae,
            up_block_types=("UpDecoderBlock2D",) * n_vae,
            latent_channels=config.latent_channels,
            norm_num_groups=config.norm_num_groups,
        )
        torch.manual_seed(seed)
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(tokenizer),
                hidden_size=config.cross_attention_dim,
                intermediate_size=config.text_intermediate_size,
                num_hidden_layers=config.text_num_layers,
                num_attention_heads=config.text_num_heads,
                max_position_embeddings=config.model_max_length,
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
        )
    # SD 1.5's betas; "leading" spacing with offset 1 is what UniPC inherits from SD 1.5's scheduler config.
    scheduler = UniPCMultistepScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type="epsilon",
        timestep_spacing="leading",
        steps_offset=1,
    )
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def _looks_like_local_path(name_or_path: str) -> bool:
    # A Hub id is "owner/name"; anything absolute, relative-dotted, home-relative or deeper is a path.
    return (
        os.path.isabs(name_or_path)
        or name_or_path.startswith((".", "~"))
        or "\\" in name_or_path
        or name_or_path.count("/") != 1
    )


def load_stable_diffusion(
    name_or_path: str | os.PathLike,
    torch_dtype: torch.dtype | None = None,
    local_files_only: bool | None = None,
    safety_checker: bool = False,
) -> StableDiffusionPipeline:
    """Load Stable Diffusion: SD 1.5 from the Hub or disk, or a tiny SD saved with ``save_pretrained``.

    Both go through the same ``StableDiffusionPipeline.from_pretrained`` call.

    Args:
        name_or_path: a Hub id such as ``SD15_MODEL_ID``, or a local diffusers folder (one with
            ``model_index.json``).
        torch_dtype: the dtype of every component, whatever the folder was saved in; ``None`` keeps the
            saved dtypes.
        local_files_only: forbid downloads. ``None``: True for a local folder, else the Hub's own default
            (which ``HF_HUB_OFFLINE=1`` turns into True).
        safety_checker: keep the base's safety checker (SD 1.5 has one). Off by default: training,
            validation and evaluation run without it, as in the authors' code (a blacked-out image scored as a
            generation would bias every metric). Asking for it on a base without one is an error.

    Returns:
        The pipeline, on CPU.

    Raises:
        FileNotFoundError: a local path that does not exist.
        ValueError: a local path that is not a diffusers folder.
        OSError: a Hub id that is neither cached nor downloadable.
    """
    name = os.fspath(name_or_path)
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "model_index.json").is_file():
            raise ValueError(
                f"{name!r} is not a diffusers folder: it has no model_index.json "
                "(save one with StableDiffusionPipeline.save_pretrained)"
            )
        name = str(path)
        if local_files_only is None:
            local_files_only = True
    elif _looks_like_local_path(name):
        raise FileNotFoundError(
            f"no such folder {name!r} (expected a diffusers folder or a Hub id like {SD15_MODEL_ID!r})"
        )

    hub_kwargs = {} if local_files_only is None else {"local_files_only": local_files_only}
    # model_index.json records each component as [library, class]; [null, null] means "saved without it".
    try:
        index = StableDiffusionPipeline.load_config(name, **hub_kwargs)
    except OSError as error:
        raise OSError(
            f"could not fetch {name!r}'s model_index.json: not in the local Hub cache (HF_HOME) and the "
            "Hub is unreachable or disabled (HF_HUB_OFFLINE=1); download it first or pass a local folder"
        ) from error
    has_checker = (index.get("safety_checker") or [None, None])[0] is not None
    if safety_checker and not has_checker:
        raise ValueError(f"{name!r} has no safety checker to switch on (its model_index.json lists none)")
    extra = {} if safety_checker else {"safety_checker": None, "feature_extractor": None,
                                       "requires_safety_checker": False}
    # safetensors only: a folder holding nothing but pickled .bin weights is refused, never unpickled
    return StableDiffusionPipeline.from_pretrained(name, dtype=torch_dtype, use_safetensors=True, **hub_kwargs,
                                                   **extra)


def add_placeholder_token(
    tokenizer: CLIPTokenizer,
    text_encoder: CLIPTextModel,
    token: str = PLACEHOLDER_TOKEN,
    initializer_token: str | None = None,
) -> int:
    """Add ``token`` to the tokenizer and give it an embedding row; idempotent.

    If the tokenizer already knows the token (e.g. a reloaded folder) and the text encoder has its row,
    nothing changes and the existing id is returned. The new row starts as the initializer token's row
    (textual-inversion style) or, without one, as the mean of the existing rows. This is the only write
    into the embedding table; afterwards the condition enters through ``encode_condition``.

    Args:
        tokenizer: the diffusion tokenizer (modified in place).
        text_encoder: the diffusion text encoder (its input embeddings are resized in place).
        token: the placeholder string, ``"<emotion>"`` by default.
        initializer_token: an existing word that tokenizes to exactly one token, or ``None`` for the mean row.

    Returns:
        The placeholder's token id.
    """
    embeddings = text_encoder.get_input_embeddings()
    if token in tokenizer.get_vocab():
        token_id = tokenizer.convert_tokens_to_ids(token)
        if token_id < embeddings.num_embeddings:
            return token_id
    else:
        tokenizer.add_tokens([token])
        token_id = tokenizer.convert_tokens_to_ids(token)

    init_id = None
    if initializer_token is not None:
        init_ids = tokenizer.encode(initializer_token, add_special_tokens=False)
        if len(init_ids) != 1:
            raise ValueError(
                f"initializer_token {initializer_token!r} must be a single token, "
                f"it tokenizes to {len(init_ids)}"
            )
        init_id = init_ids[0]

    old_rows = embeddings.num_embeddings
    # mean_resizing=False: transformers would fit a Gaussian to the table; we set the row ourselves below.
    text_encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    weight = text_encoder.get_input_embeddings().weight
    with torch.no_grad():
        weight[token_id] = weight[init_id] if init_id is not None else weight[:old_rows].mean(dim=0)
    return token_id


def _tokenize(tokenizer: CLIPTokenizer, prompts: list[str], device: torch.device) -> torch.Tensor:
    # SD's own encode_prompt tokenizes exactly like this: padded to 77 with EOS, truncated.
    return tokenizer(
        prompts,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids.to(device)  # (B, N)


def _run_text_encoder(text_encoder: CLIPTextModel, input_ids: torch.Tensor) -> torch.Tensor:
    # As StableDiffusionPipeline.encode_prompt: an attention mask only if the encoder was trained with one,
    # and last_hidden_state, never pooler_output (SD 1.5's legacy eos id breaks it with added tokens).
    attention_mask = (
        torch.ones_like(input_ids) if getattr(text_encoder.config, "use_attention_mask", False) else None
    )
    return text_encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def _as_prompt_list(prompts: str | list[str], batch_size: int | None) -> list[str]:
    if isinstance(prompts, str):
        return [prompts] * (batch_size or 1)
    prompts = list(prompts)
    if batch_size is not None and len(prompts) != batch_size:
        raise ValueError(f"got {len(prompts)} prompts for a batch of {batch_size} conditions")
    return prompts


def encode_prompt(
    text_encoder: CLIPTextModel, tokenizer: CLIPTokenizer, prompts: str | list[str]
) -> torch.Tensor:
    """Plain prompt encoding, as SD does it (for the negative / empty prompt and the parity test).

    Args:
        text_encoder: the diffusion text encoder.
        tokenizer: its tokenizer.
        prompts: a string or B strings.

    Returns:
        prompt_embeds: (B, N, C), N = ``tokenizer.model_max_length`` (77).
    """
    device = text_encoder.get_input_embeddings().weight.device
    input_ids = _tokenize(tokenizer, _as_prompt_list(prompts, None), device)
    return _run_text_encoder(text_encoder, input_ids)


# Which encode_condition call (if any) is running in the current thread / task. Each call's hook only acts
# when it is the active one, so concurrent calls on a shared text encoder never see each other's condition.
_ACTIVE_SUBSTITUTION: contextvars.ContextVar[object | None] = contextvars.ContextVar(
    "uniemo_substitution", default=None
)


def encode_condition(
    text_encoder: CLIPTextModel,
    tokenizer: CLIPTokenizer,
    condition: torch.Tensor,
    prompts: str | list[str],
    placeholder_id: int,
) -> torch.Tensor:
    """Encode prompts with each sample's condition in place of the placeholder token (paper Sec. III-B).

    Differentiable in ``condition``; works at any batch size; never writes into the embedding table, so a
    frozen text encoder (``requires_grad_(False)``) gets no gradient and spends no gradient memory.

    Args:
        text_encoder: the diffusion text encoder (frozen or not).
        tokenizer: its tokenizer, which knows the placeholder token.
        condition: (B, C) fused emotion conditions c, C = the text encoder width.
        prompts: B strings, or one string used for every sample; each must contain the placeholder exactly
            once, e.g. ``"<emotion>"`` (generation) or ``"<emotion> lamp"`` (transfer).
        placeholder_id: the id ``add_placeholder_token`` returned.

    Returns:
        prompt_embeds: (B, N, C), N = ``tokenizer.model_max_length`` (77); pass to the UNet as
        ``encoder_hidden_states`` or to ``StableDiffusionPipeline`` as ``prompt_embeds``.
    """
    embeddings = text_encoder.get_input_embeddings()
    if condition.ndim != 2 or condition.shape[1] != embeddings.embedding_dim:
        raise ValueError(
            f"condition must be (B, {embeddings.embedding_dim}) for this text encoder, "
            f"got {tuple(condition.shape)}"
        )
    prompts = _as_prompt_list(prompts, condition.shape[0])
    input_ids = _tokenize(tokenizer, prompts, embeddings.weight.device)  # (B, N)
    mask = input_ids == placeholder_id  # (B, N)
    counts = mask.sum(dim=1)
    if (counts != 1).any():
        bad = int((counts != 1).nonzero()[0])
        name = tokenizer.convert_ids_to_tokens(placeholder_id)
        raise ValueError(
            f"each prompt must contain the placeholder {name!r} exactly once (after truncation to "
            f"{tokenizer.model_max_length} tokens); prompt {bad} {prompts[bad]!r} has it "
            f"{int(counts[bad])} times"
        )

    call = object()

    def substitute(module: torch.nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
        if _ACTIVE_SUBSTITUTION.get() is not call:
            return None  # another call's (or a plain) forward: leave it alone
        # output: (B, N, C); every placeholder position takes its own sample's condition row.
        return torch.where(
            mask[..., None], condition[:, None, :].to(device=output.device, dtype=output.dtype), output
        )

    handle = embeddings.register_forward_hook(substitute)
    context_token = _ACTIVE_SUBSTITUTION.set(call)
    try:
        return _run_text_encoder(text_encoder, input_ids)
    finally:
        _ACTIVE_SUBSTITUTION.reset(context_token)
        handle.remove()
