"""EmoClassifier: shapes, parity with the library CLIP vision tower, gradient flow, config validation."""

import pytest
import torch
from transformers import CLIPVisionConfig, CLIPVisionModel

from uniemo.classifier import EmoClassifier, EmoClassifierConfig
from uniemo.clip import classifier_config_from_clip, init_from_clip


def _tiny_clip_vision(seed=0):
    torch.manual_seed(seed)
    cfg = CLIPVisionConfig(hidden_size=32, intermediate_size=128, num_hidden_layers=6, num_attention_heads=4,
                           image_size=32, patch_size=8)
    return CLIPVisionModel(cfg).eval()


def test_output_shapes(tiny_classifier):
    cfg = tiny_classifier.config
    x = torch.randn(3, 3, cfg.image_size, cfg.image_size)
    out = tiny_classifier(x, return_attention=True)
    assert out.logits.shape == (3, 8)
    for name in ("cls_embed", "scene_embed", "object_embed"):
        assert getattr(out, name).shape == (3, cfg.width)
    assert out.scene_tokens.shape == (3, cfg.num_scene_queries, cfg.width)
    assert out.scene_attention.shape == (3, cfg.grid_size, cfg.grid_size)
    assert torch.allclose(out.object_attention.sum(dim=(1, 2)), torch.ones(3), atol=1e-5)
    assert torch.isfinite(out.logits).all()
    # attention maps cost nothing unless asked for
    assert tiny_classifier(x).scene_attention is None


@pytest.mark.parametrize("kv", ["patch", "cls_patch"])
def test_attention_request_does_not_change_outputs(kv):
    torch.manual_seed(0)
    model = EmoClassifier(EmoClassifierConfig.tiny(interactive_kv=kv)).eval()
    x = torch.randn(2, 3, 32, 32)
    a, b = model(x), model(x, return_attention=True)
    assert torch.allclose(a.logits, b.logits, atol=1e-5)
    assert torch.allclose(a.scene_embed, b.scene_embed, atol=1e-5)


def test_clip_parity_with_queries_disabled():
    """With its queries disabled, the classifier reproduces transformers' CLIPVisionModel exactly."""
    hf = _tiny_clip_vision()
    config = classifier_config_from_clip(hf.config, use_queries=False)
    ours = init_from_clip(EmoClassifier(config), hf).eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        ref = hf(pixel_values=x)
        feats = ours.forward_features(x)
    assert (feats.cls_embed - ref.pooler_output).abs().max() <= 1e-5
    assert (feats.patch_tokens - ref.last_hidden_state[:, 1:]).abs().max() <= 1e-5


def test_clip_parity_from_openai_state_dict():
    """OpenAI/open_clip key names load into the same backbone (they are our own names)."""
    hf = _tiny_clip_vision(seed=1)
    config = classifier_config_from_clip(hf.config, use_queries=False)
    first = init_from_clip(EmoClassifier(config), hf).eval()
    openai_state = {"visual." + k: v for k, v in first.state_dict().items() if not k.startswith("head")}
    second = init_from_clip(EmoClassifier(config), openai_state).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(first.forward_features(x).cls_embed, second.forward_features(x).cls_embed)


def test_init_from_clip_rejects_wrong_geometry():
    hf = _tiny_clip_vision()
    with pytest.raises(ValueError, match="shape mismatch"):
        init_from_clip(EmoClassifier(EmoClassifierConfig.tiny(width=64, heads=2, proj_dim=16)), hf)


def test_queries_change_the_chain_but_not_the_backbone_weights():
    hf = _tiny_clip_vision()
    config = classifier_config_from_clip(hf.config)
    model = init_from_clip(EmoClassifier(config), hf)
    assert model.config.use_queries and model.config.resolved_split_layers == (2, 4)


def test_every_trainable_parameter_gets_a_gradient(tiny_classifier):
    model = tiny_classifier.train()
    model.scene_proj.requires_grad_(False)  # a frozen module must stay without gradient
    x = torch.randn(4, 3, 32, 32)
    out = model(x)
    s, o = model.project_queries(out)
    loss = out.logits.logsumexp(-1).mean() + s.sum() + o.sum()
    loss.backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
            assert p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None, name


def test_official_variant_freezes_projections_and_drops_beta():
    model = EmoClassifier(EmoClassifierConfig.tiny(variant="official"))
    assert model.config.interactive_layers == 1 and model.config.interactive_kv == "cls_patch"
    assert model.scene_block.beta is None
    assert not model.scene_proj.weight.requires_grad
    assert len(model.scene_block.layers) == 1


def test_beta_scales_the_refinement():
    """Eq. 3: with β = 0 the refined queries equal the queries entering the block."""
    torch.manual_seed(0)
    model = EmoClassifier(EmoClassifierConfig.tiny(beta_init=0.0)).eval()
    q = torch.randn(2, 4, 32)
    ctx = torch.randn(2, 17, 32)
    out, _ = model.scene_block(q, ctx)
    assert torch.equal(out, q)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(split_layers=(4, 2)), "0 < L1 < L2 < layers"),
        (dict(split_layers=(0, 3)), "0 < L1 < L2 < layers"),
        (dict(split_layers=(2, 6)), "0 < L1 < L2 < layers"),
        (dict(image_size=30), "multiple of patch_size"),
        (dict(interactive_layers=0), "interactive_layers"),
        (dict(num_scene_queries=0), "use_queries=false"),
    ],
)
def test_invalid_configs_say_what_to_change(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EmoClassifierConfig.tiny(**kwargs)


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(ValueError, match="vit-b-32"):
        EmoClassifierConfig.from_preset("vit-h-99")
    with pytest.raises(ValueError, match="official"):
        EmoClassifierConfig.from_preset("tiny", variant="authors")


@pytest.mark.parametrize("preset, tokens", [("vit-b-32", 50), ("vit-b-16", 197), ("vit-l-14", 257)])
def test_presets_geometry(preset, tokens):
    cfg = EmoClassifierConfig.from_preset(preset)
    assert cfg.grid_size ** 2 + 1 == tokens
    assert cfg.resolved_split_layers == (cfg.layers // 3, 2 * cfg.layers // 3)


def test_save_load_round_trip(tmp_path, tiny_classifier):
    model = tiny_classifier.eval()
    model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    loaded = EmoClassifier.from_pretrained(tmp_path).eval()
    assert loaded.config == model.config
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x).logits, loaded(x).logits)


def test_loading_reads_only_json_and_safetensors(tmp_path, tiny_classifier, monkeypatch):
    tiny_classifier.save_pretrained(tmp_path)

    def no_pickle(*a, **k):
        raise AssertionError("torch.load (pickle) must not be used to load a model")

    monkeypatch.setattr(torch, "load", no_pickle)
    EmoClassifier.from_pretrained(tmp_path)


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        EmoClassifier.from_pretrained(tmp_path / "nowhere")
