"""Mixed precision end to end: half-precision stage-2 runs write model folders that load in one dtype and
generate, transfer and fuse; the launcher's precision is honoured; a trained UNet is never dropped."""

from __future__ import annotations

import json
import struct

import pytest
import torch

from uniemo import UniEmoPipeline


def _safetensors_dtypes(path) -> set[str]:
    with open(path, "rb") as f:
        header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
    return {v["dtype"] for k, v in header.items() if k != "__metadata__"}


def _module_dtypes(pipe) -> set[torch.dtype]:
    modules = [pipe.classifier, pipe.fusion, pipe.sd.unet, pipe.sd.vae, pipe.sd.text_encoder]
    return {p.dtype for m in modules for p in m.parameters()}


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_precision_stage2_writes_a_folder_that_loads_and_generates(
        precision, tmp_path, learnable_emoset, tiny_sd_dir, tiny_stage1_dir, tiny_correlation_dir):
    from safetensors.torch import load_file

    from train.joint import main

    extra = ["model.train_unet=true"] if precision == "bf16" else []
    summary = main(["--preset", "tiny", f"data.root={learnable_emoset}", f"out_dir={tmp_path}",
                    f"model.stage1={tiny_stage1_dir}", f"model.diffusion={tiny_sd_dir}",
                    f"model.correlation={tiny_correlation_dir}", "max_steps=1", "validation_every=1",
                    "checkpoint_every=100", f"mixed_precision={precision}", *extra])
    assert summary["mixed_precision"] == precision
    final = tmp_path / "final"
    # every diffusion weight is written in float32, whatever the training precision
    for part in ("unet", "vae"):
        assert _safetensors_dtypes(final / "diffusion" / part / "diffusion_pytorch_model.safetensors") == {"F32"}
    assert _safetensors_dtypes(final / "diffusion" / "text_encoder" / "model.safetensors") == {"F32"}
    base_unet = load_file(str(tiny_sd_dir / "unet" / "diffusion_pytorch_model.safetensors"))
    saved_unet = load_file(str(final / "diffusion" / "unet" / "diffusion_pytorch_model.safetensors"))
    changed = [k for k in base_unet if not torch.equal(base_unet[k], saved_unet[k])]
    if precision == "bf16":  # trained: the folder holds the trained UNet, not the base's
        assert changed
    else:  # frozen: an exact copy of the base (not a round trip through fp16)
        assert not changed

    pipe = UniEmoPipeline.from_pretrained(final)
    assert _module_dtypes(pipe) == {torch.float32}
    kw = dict(num_inference_steps=2, seed=0)
    assert len(pipe.generate("awe", num_images=2, **kw)) == 2
    assert pipe.transfer("fear", "cup", **kw)[0].size == (32, 32)
    assert pipe.transfer("fear", "cup", noun_guidance_scale=9.0, guidance_scale=4.0, **kw)[0].size == (32, 32)
    assert pipe.fuse("amusement", "fear", weight=0.3, **kw)[0].size == (32, 32)


@pytest.mark.parametrize("dtype", [torch.bfloat16, "fp16"])
def test_from_pretrained_dtype_reaches_every_module(tiny_model_dir, dtype):
    pipe = UniEmoPipeline.from_pretrained(tiny_model_dir, dtype=dtype)
    expected = torch.bfloat16 if dtype is torch.bfloat16 else torch.float16
    assert _module_dtypes(pipe) == {expected}
    assert pipe.dtype == expected
    pred = pipe.classify(torch.full((40, 40, 3), 128, dtype=torch.uint8).numpy())
    assert abs(sum(pred.probs.values()) - 1) < 1e-3
    if dtype is torch.bfloat16:  # CPU half-precision convolutions: bf16 is the one every CPU build runs
        assert pipe.generate("awe", num_inference_steps=2, seed=0)[0].size == (32, 32)
        assert pipe.transfer("awe", "cup", num_inference_steps=2, noun_guidance_scale=3.0)[0].size == (32, 32)


def test_from_pretrained_defaults_to_float32_and_rejects_unknown_dtypes(tiny_model_dir):
    assert _module_dtypes(UniEmoPipeline.from_pretrained(tiny_model_dir)) == {torch.float32}
    with pytest.raises(ValueError, match="float32, float16 or bfloat16"):
        UniEmoPipeline.from_pretrained(tiny_model_dir, dtype="int8")
    with pytest.raises(ValueError, match="disagree"):
        UniEmoPipeline.from_pretrained(tiny_model_dir, dtype="fp16", torch_dtype=torch.bfloat16)


def test_mixed_precision_no_is_a_string_in_overrides_and_files(tmp_path):
    from uniemo.training.joint_config import JointConfig as Config
    from uniemo.config import parse_config

    assert parse_config(Config, ["model.stage1=x", "mixed_precision=no"]).mixed_precision == "no"
    preset = tmp_path / "p.yaml"
    preset.write_text("mixed_precision: no\nmodel:\n  train_unet: false\n")
    cfg = parse_config(Config, ["--config", str(preset), "model.stage1=x"])
    assert cfg.mixed_precision == "no" and cfg.model.train_unet is False
    assert parse_config(Config, ["model.stage1=x"]).mixed_precision is None  # the launcher decides
    with pytest.raises(ValueError, match="mixed_precision"):
        parse_config(Config, ["model.stage1=x", "mixed_precision=fp8"])


@pytest.mark.parametrize("configured, launcher, expected", [(None, "bf16", "bf16"), ("no", "bf16", "no"),
                                                             (None, None, "no")])
def test_stage1_honours_the_launchers_precision_unless_the_config_sets_one(
        configured, launcher, expected, tmp_path, learnable_emoset, monkeypatch):
    from train.understanding import main

    if launcher:  # what `accelerate launch --mixed_precision bf16` exports
        monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", launcher)
    else:
        monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    argv = ["--preset", "tiny", f"data.root={learnable_emoset}", f"out_dir={tmp_path}", "max_steps=1",
            "eval_every=1"] + ([f"mixed_precision={configured}"] if configured else [])
    assert main(argv)["mixed_precision"] == expected


def test_a_trained_unet_cannot_be_told_not_to_be_written():
    from uniemo.training.joint_config import JointConfig as Config
    from uniemo.config import parse_config

    with pytest.raises(ValueError, match="drop the trained UNet"):
        parse_config(Config, ["model.stage1=x", "model.train_unet=true", "model.copy_diffusion=false"])


def test_official_condition_loss_reads_the_frozen_stage1_head(tiny_stage1_dir):
    from uniemo.classifier import EmoClassifier
    from uniemo.training.stage2 import frozen_head_logits

    classifier = EmoClassifier.from_pretrained(tiny_stage1_dir / "classifier")
    last = classifier.head[-1]
    c = torch.randn(3, last.in_features, requires_grad=True)
    z = frozen_head_logits(classifier, c)
    torch.testing.assert_close(z, c @ last.weight.t() + last.bias)
    z.sum().backward()
    assert c.grad is not None and last.weight.grad is None  # gradient to c only: the head stays frozen
    with pytest.raises(ValueError, match="head_hidden"):
        frozen_head_logits(classifier, torch.randn(2, last.in_features + 1))
