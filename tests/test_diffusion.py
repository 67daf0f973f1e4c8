"""Tests for uniemo.diffusion: offline tokenizers, the tiny SD, the loading path, condition injection.

Everything is built in code (no download); the tiny SD takes about a second to sample on a CPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from uniemo.constants import PLACEHOLDER_TOKEN
from uniemo.diffusion import (
    TinySDConfig,
    add_placeholder_token,
    build_byte_tokenizer,
    build_clip_bpe_tokenizer,
    build_tiny_stable_diffusion,
    encode_condition,
    encode_prompt,
    load_stable_diffusion,
)


@pytest.fixture(scope="module")
def tiny_sd():
    """The tiny SD with the placeholder added and the text encoder frozen, as in stage 2."""
    pipe = build_tiny_stable_diffusion(seed=0)
    placeholder_id = add_placeholder_token(pipe.tokenizer, pipe.text_encoder)
    pipe.text_encoder.requires_grad_(False)
    pipe.set_progress_bar_config(disable=True)
    return pipe, placeholder_id


@pytest.fixture(scope="module")
def saved_tiny_sd(tiny_sd, tmp_path_factory):
    pipe, _ = tiny_sd
    path = tmp_path_factory.mktemp("tiny_sd")
    pipe.save_pretrained(path)
    return path


def test_byte_tokenizer_round_trip():
    tokenizer = build_byte_tokenizer()
    assert len(tokenizer) == 514
    text = "a calm lake at dusk"
    ids = tokenizer(text).input_ids
    # One token per character, between BOS (512) and EOS (513).
    assert ids[0] == 512 and ids[-1] == 513 and len(ids) == len(text.replace(" ", "")) + 2
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    padded = tokenizer(text, padding="max_length", max_length=77).input_ids
    assert len(padded) == 77 and padded[-1] == tokenizer.pad_token_id == 513


def test_clip_bpe_tokenizer_matches_openai_ids():
    tokenizer = build_clip_bpe_tokenizer()
    assert len(tokenizer) == 49408
    assert tokenizer("a photo of a dog").input_ids == [49406, 320, 1125, 539, 320, 1929, 49407]


def test_tiny_sd_sizes_follow_config():
    pipe = build_tiny_stable_diffusion(TinySDConfig(image_size=64), seed=0)
    assert pipe.unet.config.sample_size * pipe.vae_scale_factor == 64
    assert pipe.text_encoder.config.hidden_size == pipe.unet.config.cross_attention_dim
    with pytest.raises(ValueError, match="norm_num_groups"):
        TinySDConfig(norm_num_groups=24).validate()


def test_add_placeholder_token_initialises_and_is_idempotent():
    pipe = build_tiny_stable_diffusion(seed=0)
    tokenizer, text_encoder = pipe.tokenizer, pipe.text_encoder
    a_id = tokenizer.encode("a", add_special_tokens=False)[0]
    token_id = add_placeholder_token(tokenizer, text_encoder, initializer_token="a")
    weight = text_encoder.get_input_embeddings().weight
    assert token_id == 514 and weight.shape[0] == 515
    assert torch.equal(weight[token_id], weight[a_id])
    # A second call changes nothing and returns the same id.
    before = weight.detach().clone()
    assert add_placeholder_token(tokenizer, text_encoder, initializer_token="a") == token_id
    assert torch.equal(text_encoder.get_input_embeddings().weight, before)
    assert tokenizer(PLACEHOLDER_TOKEN).input_ids == [512, token_id, 513]

    # Without an initializer the new row is the mean of the existing ones.
    pipe = build_tiny_stable_diffusion(seed=0)
    token_id = add_placeholder_token(pipe.tokenizer, pipe.text_encoder)
    weight = pipe.text_encoder.get_input_embeddings().weight
    torch.testing.assert_close(weight[token_id], weight[:token_id].mean(0))

    with pytest.raises(ValueError, match="single token"):
        add_placeholder_token(
            build_byte_tokenizer(), build_tiny_stable_diffusion().text_encoder, initializer_token="ab"
        )


def test_encode_condition_parity_with_plain_prompt(tiny_sd):
    pipe, placeholder_id = tiny_sd
    prompts = [PLACEHOLDER_TOKEN, f"{PLACEHOLDER_TOKEN} lamp", PLACEHOLDER_TOKEN]
    row = pipe.text_encoder.get_input_embeddings().weight[placeholder_id]
    condition = row.expand(3, -1).clone()  # (3, C)
    with torch.no_grad():
        prompt_embeds = encode_condition(
            pipe.text_encoder, pipe.tokenizer, condition, prompts, placeholder_id
        )
        reference = encode_prompt(pipe.text_encoder, pipe.tokenizer, prompts)
    assert prompt_embeds.shape == (3, 77, pipe.unet.config.cross_attention_dim)
    assert (prompt_embeds - reference).abs().max() <= 1e-5


def test_encode_condition_rows_are_independent(tiny_sd):
    pipe, placeholder_id = tiny_sd
    condition = torch.randn(3, 32, generator=torch.Generator().manual_seed(0))
    prompts = [PLACEHOLDER_TOKEN, f"{PLACEHOLDER_TOKEN} lamp", PLACEHOLDER_TOKEN]
    with torch.no_grad():
        before = encode_condition(pipe.text_encoder, pipe.tokenizer, condition, prompts, placeholder_id)
        changed = condition.clone()
        changed[1] += 1.0
        after = encode_condition(pipe.text_encoder, pipe.tokenizer, changed, prompts, placeholder_id)
    assert torch.equal(before[0], after[0]) and torch.equal(before[2], after[2])
    assert not torch.equal(before[1], after[1])
    # Samples 0 and 2 share a prompt but not a condition.
    assert not torch.equal(before[0], before[2])


def test_encode_condition_gradient_reaches_condition_not_table(tiny_sd):
    pipe, placeholder_id = tiny_sd
    embeddings = pipe.text_encoder.get_input_embeddings()
    condition = torch.randn(2, 32, requires_grad=True)
    prompt_embeds = encode_condition(
        pipe.text_encoder, pipe.tokenizer, condition, PLACEHOLDER_TOKEN, placeholder_id
    )
    prompt_embeds.square().mean().backward()
    assert (
        condition.grad is not None and torch.isfinite(condition.grad).all() and condition.grad.abs().sum() > 0
    )
    assert embeddings.weight.grad is None
    assert not embeddings._forward_hooks  # the per-call hook is gone


def test_encode_condition_rejects_bad_prompts(tiny_sd):
    pipe, placeholder_id = tiny_sd
    condition = torch.zeros(2, 32)
    for prompts in (["a lamp", PLACEHOLDER_TOKEN], f"{PLACEHOLDER_TOKEN} {PLACEHOLDER_TOKEN}"):
        with pytest.raises(ValueError, match=PLACEHOLDER_TOKEN):
            encode_condition(pipe.text_encoder, pipe.tokenizer, condition, prompts, placeholder_id)
    with pytest.raises(ValueError, match="3 prompts"):
        encode_condition(
            pipe.text_encoder, pipe.tokenizer, condition, [PLACEHOLDER_TOKEN] * 3, placeholder_id
        )
    with pytest.raises(ValueError, match="condition must be"):
        encode_condition(
            pipe.text_encoder, pipe.tokenizer, torch.zeros(2, 7), PLACEHOLDER_TOKEN, placeholder_id
        )


def test_saved_tiny_sd_loads_and_generates(tiny_sd, saved_tiny_sd, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    original, placeholder_id = tiny_sd
    pipe = load_stable_diffusion(saved_tiny_sd)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.safety_checker is None

    # The placeholder survives save/load, and adding it again is a no-op.
    rows = pipe.text_encoder.get_input_embeddings().num_embeddings
    assert add_placeholder_token(pipe.tokenizer, pipe.text_encoder) == placeholder_id
    assert pipe.text_encoder.get_input_embeddings().num_embeddings == rows
    assert torch.equal(
        pipe.text_encoder.get_input_embeddings().weight, original.text_encoder.get_input_embeddings().weight
    )

    condition = torch.randn(2, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        prompt_embeds = encode_condition(
            pipe.text_encoder, pipe.tokenizer, condition, PLACEHOLDER_TOKEN, placeholder_id
        )
        negative_prompt_embeds = encode_prompt(pipe.text_encoder, pipe.tokenizer, ["", ""])

    def generate():
        return pipe(
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds,
            num_inference_steps=2,
            output_type="pil",
            generator=torch.Generator().manual_seed(0),
        ).images

    images = generate()
    assert len(images) == 2 and all(isinstance(image, Image.Image) for image in images)
    assert images[0].size == (32, 32)
    again = generate()
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(images, again, strict=True))


def test_load_stable_diffusion_errors(saved_tiny_sd, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_stable_diffusion(tmp_path / "missing")
    with pytest.raises(ValueError, match="model_index.json"):
        load_stable_diffusion(saved_tiny_sd / "unet")


def test_load_stable_diffusion_hub_id_offline():
    from huggingface_hub import constants

    if not constants.HF_HUB_OFFLINE:
        pytest.skip("needs HF_HUB_OFFLINE=1 so that no request leaves the machine")
    with pytest.raises(OSError, match="HF_HUB_OFFLINE"):
        load_stable_diffusion("uniemo-tests/not-a-cached-model")
