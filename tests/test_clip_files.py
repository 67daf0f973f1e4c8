"""OpenAI-format CLIP files (``.safetensors``, ``.pt`` state dict, TorchScript ``.pt``) through ``load_clip``.

A small random open_clip CLIP in OpenAI's layout is the reference: the converted transformers model must give
open_clip's own image and text features on the same weights, with the real BPE tokenizer's ids.
"""

import warnings

import pytest
import torch

from uniemo.classifier import EmoClassifier
from uniemo.clip import classifier_config_from_clip, init_from_clip, load_clip

TEXTS = ["a photo of a dog", "A Sad, rainy STREET at night.", "café crème brûlée", "amusement", ""]


@pytest.fixture(scope="module")
def openai_clip(tmp_path_factory):
    """(open_clip model, its OpenAI-layout state dict, {format: file}) of one small random CLIP."""
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg
    from safetensors.torch import save_file

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        # 64-wide heads, as OpenAI's (the files store no head count): 2 heads in each tower
        model = CLIP(32, vision_cfg=CLIPVisionCfg(layers=3, width=128, patch_size=8, image_size=32),
                     text_cfg=CLIPTextCfg(context_length=77, vocab_size=49408, width=128, heads=2, layers=2),
                     quick_gelu=True).eval()
        with torch.no_grad():  # no zero biases or unit norms left for a wrong key to hide behind
            for p in model.parameters():
                p.add_(0.02 * torch.randn_like(p))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    root = tmp_path_factory.mktemp("openai_clip")
    files = {"safetensors": root / "clip.safetensors", "pt": root / "clip.pt", "torchscript": root / "ViT-tiny.pt"}
    save_file(state, files["safetensors"])
    torch.save(state, files["pt"])
    with warnings.catch_warnings():  # torch.jit is deprecated; OpenAI's released files are TorchScript archives
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.script(model).save(str(files["torchscript"]))
    return model, state, files


@pytest.mark.parametrize("fmt", ["safetensors", "pt", "torchscript"])
def test_openai_file_matches_open_clip(openai_clip, fmt):
    reference, _, files = openai_clip
    model, tokenizer = load_clip(str(files[fmt]))
    vc, tc = model.config.vision_config, model.config.text_config
    assert (vc.image_size, vc.patch_size, vc.hidden_size, vc.num_hidden_layers, vc.num_attention_heads) == \
        (32, 8, 128, 3, 2)
    assert (tc.hidden_size, tc.num_hidden_layers, tc.num_attention_heads, tc.vocab_size) == (128, 2, 2, 49408)
    assert model.config.projection_dim == 32 and not model.training
    assert all(not p.requires_grad for p in model.parameters())

    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    tokens = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        ours_image = model.get_image_features(pixel_values=images).pooler_output
        ours_text = model.get_text_features(**tokens).pooler_output
        import open_clip

        ref_image = reference.encode_image(images)
        ref_text = reference.encode_text(open_clip.tokenize(TEXTS))
    torch.testing.assert_close(ours_image, ref_image, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(ours_text, ref_text, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(model.logit_scale, reference.logit_scale.detach())


def test_bpe_tokenizer_ids_equal_open_clip(openai_clip):
    import open_clip

    _, tokenizer = load_clip(str(openai_clip[2]["safetensors"]))
    assert len(tokenizer) == 49408 and tokenizer.model_max_length == 77
    ours = tokenizer(TEXTS, padding="max_length", max_length=77, return_tensors="pt")["input_ids"]
    theirs = open_clip.tokenize(TEXTS)  # padded with 0 after the end token
    for mine, ref in zip(ours, theirs):
        end = int(ref.argmax()) + 1  # the end token has the largest id
        assert mine[:end].tolist() == ref[:end].tolist()
        assert int(mine[end - 1]) == tokenizer.eos_token_id
    assert ours[0, :7].tolist() == [49406, 320, 1125, 539, 320, 1929, 49407]


def test_init_from_converted_model_equals_openai_state(openai_clip):
    """The classifier's backbone is the same whether it comes from the OpenAI dict or the converted model."""
    _, state, files = openai_clip
    model, _ = load_clip(str(files["safetensors"]))
    config = classifier_config_from_clip(model.config.vision_config, proj_dim=model.config.projection_dim)
    from_converted = init_from_clip(EmoClassifier(config), model.vision_model).state_dict()
    torch.manual_seed(0)
    from_openai = init_from_clip(EmoClassifier(config), state).state_dict()
    backbone = {k for k, _ in EmoClassifier(config).parameter_groups()["backbone"]}
    assert backbone and all(torch.equal(from_converted[k], from_openai[k]) for k in backbone)


def test_fp16_file_and_open_clip_checkpoint_load_as_fp32(openai_clip, tmp_path):
    """OpenAI's files are fp16; open_clip's training checkpoints wrap the dict as {"state_dict": {"module.*"}}."""
    reference, state, _ = openai_clip
    path = tmp_path / "checkpoint.pt"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v.half() for k, v in state.items()}}, path)
    model, _ = load_clip(str(path))
    assert model.dtype == torch.float32
    torch.testing.assert_close(model.visual_projection.weight, state["visual.proj"].half().float().t())


def test_unusable_files_say_why(openai_clip, tmp_path):
    from safetensors.torch import save_file

    _, state, _ = openai_clip
    resnet = {k: v for k, v in state.items() if k != "visual.proj"}
    resnet["visual.layer1.0.conv1.weight"] = torch.zeros(1)
    save_file(resnet, tmp_path / "rn.safetensors")
    with pytest.raises(ValueError, match="ResNet"):
        load_clip(str(tmp_path / "rn.safetensors"))
    truncated = {k: v for k, v in state.items() if k != "ln_final.bias"}
    save_file(truncated, tmp_path / "truncated.safetensors")
    with pytest.raises(ValueError, match="ln_final.bias"):
        load_clip(str(tmp_path / "truncated.safetensors"))
    (tmp_path / "clip.ckpt").write_bytes(b"")
    with pytest.raises(ValueError, match=r"\.safetensors"):
        load_clip(str(tmp_path / "clip.ckpt"))
    with pytest.raises(FileNotFoundError, match="OpenAI-format file"):
        load_clip(str(tmp_path))
