"""Tests for uniemo.fusion: shapes, Eq. 6 on hand-set weights, α's gradient, save/load, config checks."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

from uniemo.constants import EMOTIONS, PLACEHOLDER_TOKEN
from uniemo.fusion import EmoFusion, EmoFusionConfig


def _inputs(batch: int = 4, width: int = 32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(batch, width, generator=g) for _ in range(3))  # cls, scene, object: (B, D)


@pytest.fixture
def tiny_fusion() -> EmoFusion:
    torch.manual_seed(0)
    return EmoFusion(EmoFusionConfig.tiny())


def test_shapes(tiny_fusion):
    cls_embed, scene_embed, object_embed = _inputs()
    condition = tiny_fusion(cls_embed, scene_embed, object_embed, torch.rand(4), 0.5)
    assert condition.shape == (4, 32)
    assert tiny_fusion.condition_logits(condition).shape == (4, len(EMOTIONS))
    assert tiny_fusion.emotions == EMOTIONS
    with pytest.raises(ValueError, match="alpha_scene"):
        tiny_fusion(cls_embed, scene_embed, object_embed, torch.rand(3), 0.5)


def _set_mapper(mapper: nn.Sequential, scale: float) -> None:
    """Make φ(x) = scale * relu(x): identity first layer, scale * identity second layer."""
    with torch.no_grad():
        mapper[0].weight.copy_(torch.eye(2))
        mapper[0].bias.zero_()
        mapper[2].weight.copy_(scale * torch.eye(2))
        mapper[2].bias.zero_()


def test_eq6_on_hand_set_weights():
    fusion = EmoFusion(EmoFusionConfig(vision_width=2, hidden_size=2, text_width=2))
    _set_mapper(fusion.scene_mapper, 1.0)
    _set_mapper(fusion.object_mapper, 10.0)
    _set_mapper(fusion.cls_mapper, 100.0)
    cls_embed = torch.tensor([[0.5, 0.25]])
    scene_embed = torch.tensor([[1.0, 2.0]])
    object_embed = torch.tensor([[3.0, 4.0]])
    # c = 0.2 * [1, 2] + 0.5 * 10 * [3, 4] + 100 * [0.5, 0.25]
    expected = torch.tensor([[65.2, 45.4]])
    torch.testing.assert_close(fusion(cls_embed, scene_embed, object_embed, 0.2, 0.5), expected)
    torch.testing.assert_close(
        fusion(cls_embed, scene_embed, object_embed, torch.tensor([0.2]), torch.tensor([0.5])), expected
    )
    # Per-sample α: each row uses its own coefficients.
    two = fusion(
        cls_embed.repeat(2, 1),
        scene_embed.repeat(2, 1),
        object_embed.repeat(2, 1),
        torch.tensor([0.2, 0.0]),
        torch.tensor([0.5, 0.0]),
    )
    torch.testing.assert_close(two, torch.tensor([[65.2, 45.4], [50.0, 25.0]]))
    # The ReLU sits between the two layers: a negative input contributes nothing.
    torch.testing.assert_close(
        fusion(-cls_embed, scene_embed, object_embed, 0.2, 0.5), torch.tensor([[15.2, 20.4]])
    )


def test_alpha_gets_no_gradient_mappers_do(tiny_fusion):
    cls_embed, scene_embed, object_embed = _inputs()
    alpha_scene = torch.full((4,), 0.3, requires_grad=True)
    alpha_object = torch.full((4,), 0.7, requires_grad=True)
    condition = tiny_fusion(cls_embed, scene_embed, object_embed, alpha_scene, alpha_object)
    tiny_fusion.condition_logits(condition).logsumexp(-1).mean().backward()
    assert alpha_scene.grad is None and alpha_object.grad is None
    for name, param in tiny_fusion.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_init_is_trunc_normal_zero_bias(tiny_fusion):
    for module in tiny_fusion.modules():
        if isinstance(module, nn.Linear):
            assert torch.count_nonzero(module.bias) == 0
            assert module.weight.abs().max() <= 0.04  # truncated at 2 std


def test_save_load_round_trip(tiny_fusion, tmp_path, monkeypatch):
    tiny_fusion.save_pretrained(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["config.json", "model.safetensors"]

    # No pickle on the way back in.
    def no_pickle(*args, **kwargs):
        raise AssertionError("torch.load must not be used")

    monkeypatch.setattr(torch, "load", no_pickle)
    loaded = EmoFusion.from_pretrained(tmp_path)
    assert loaded.config == tiny_fusion.config
    inputs = _inputs(seed=1)
    alphas = (torch.rand(4), torch.rand(4))
    with torch.no_grad():
        torch.testing.assert_close(loaded(*inputs, *alphas), tiny_fusion(*inputs, *alphas), rtol=0, atol=0)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(vision_width=0),
        dict(vision_width=32, hidden_size=-1),
        dict(vision_width=32, text_width=0),
        dict(vision_width=32, num_classes=0),
        dict(vision_width=32, num_classes=6),  # 8 emotion names for 6 classes
    ],
)
def test_invalid_config_raises(kwargs):
    with pytest.raises(ValueError, match="EmoFusionConfig"):
        EmoFusionConfig(**kwargs)


def test_invalid_config_fails_at_model_construction():
    config = EmoFusionConfig.tiny()
    config.hidden_size = 0
    with pytest.raises(ValueError, match="hidden_size"):
        EmoFusion(config)


def test_condition_feeds_encode_condition(tiny_fusion):
    """The fused condition has the tiny SD's text width and goes straight into encode_condition."""
    from uniemo.diffusion import add_placeholder_token, build_tiny_stable_diffusion, encode_condition

    pipe = build_tiny_stable_diffusion(seed=0)
    placeholder_id = add_placeholder_token(pipe.tokenizer, pipe.text_encoder)
    condition = tiny_fusion(*_inputs(batch=2), 0.5, 0.5)
    prompt_embeds = encode_condition(
        pipe.text_encoder, pipe.tokenizer, condition, PLACEHOLDER_TOKEN, placeholder_id
    )
    assert prompt_embeds.shape == (2, 77, pipe.unet.config.cross_attention_dim)
