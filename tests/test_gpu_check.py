"""eval/gpu_check.py and uniemo.real_geometry: SD 1.5's and ViT-L/14's geometry as published, the refusal without
CUDA, and the whole check run at tiny geometry on the CPU (``--cpu-smoke``)."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from eval.gpu_check import main

ROOT = Path(__file__).resolve().parents[1]


def test_help_imports_no_torch():
    probe = ("import runpy, sys\nsys.argv = ['gpu_check.py', '--help']\n"
             "try:\n    runpy.run_path('eval/gpu_check.py', run_name='__main__')\nexcept SystemExit:\n    pass\n"
             "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--cpu-smoke" in result.stdout and result.stdout.strip().endswith("NO-TORCH")


def test_refuses_without_cuda(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "check.json"
    with pytest.raises(SystemExit) as exit_info:
        main(["--out", str(out)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "no CUDA GPU" in err and "--cpu-smoke" in err
    assert not out.exists()


def test_sd15_pipeline_has_the_published_geometry():
    """Config values of SD 1.5's unet/, vae/, scheduler/ and text_encoder/ config.json; built on the meta device
    (shapes only, no memory), so the parameter counts are those of the real checkpoint's tensors."""
    from uniemo.real_geometry import build_sd15_pipeline

    pipe = build_sd15_pipeline(device="meta")
    unet, vae, text = pipe.unet.config, pipe.vae.config, pipe.text_encoder.config
    assert unet.sample_size == 64 and unet.in_channels == unet.out_channels == 4
    assert tuple(unet.block_out_channels) == (320, 640, 1280, 1280) and unet.layers_per_block == 2
    assert unet.cross_attention_dim == 768 and unet.attention_head_dim == 8
    assert tuple(unet.down_block_types) == ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",)
    assert tuple(unet.up_block_types) == ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3
    assert unet.flip_sin_to_cos and unet.freq_shift == 0 and unet.norm_num_groups == 32
    assert tuple(vae.block_out_channels) == (128, 256, 512, 512) and vae.latent_channels == 4
    assert tuple(vae.down_block_types) == ("DownEncoderBlock2D",) * 4
    assert tuple(vae.up_block_types) == ("UpDecoderBlock2D",) * 4
    assert vae.layers_per_block == 2 and vae.sample_size == 512 and vae.scaling_factor == 0.18215
    sched = pipe.scheduler.config
    assert type(pipe.scheduler).__name__ == "PNDMScheduler"
    assert (sched.beta_start, sched.beta_end, sched.beta_schedule, sched.num_train_timesteps) == (
        0.00085, 0.012, "scaled_linear", 1000)
    assert sched.skip_prk_steps and sched.steps_offset == 1 and not sched.set_alpha_to_one
    assert (text.hidden_size, text.num_hidden_layers, text.num_attention_heads, text.intermediate_size) == (
        768, 12, 12, 3072)
    assert text.vocab_size == len(pipe.tokenizer) == 49408 and text.max_position_embeddings == 77
    assert text.hidden_act == "quick_gelu"
    assert pipe.tokenizer("a photo of a dog").input_ids == [49406, 320, 1125, 539, 320, 1929, 49407]
    assert pipe.safety_checker is None
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert (count(pipe.unet), count(pipe.vae), count(pipe.text_encoder)) == (859_520_964, 83_653_863, 123_060_480)


def test_vit_l14_classifier_and_fusion_geometry():
    from uniemo.real_geometry import build_fusion, build_vit_l14_classifier

    classifier = build_vit_l14_classifier(device="meta")
    c = classifier.config
    assert (c.image_size, c.patch_size, c.width, c.layers, c.heads, c.proj_dim) == (224, 14, 1024, 24, 16, 768)
    assert c.resolved_split_layers == (8, 16) and c.preset == "vit-l-14"
    fusion = build_fusion(c, device="meta")
    assert (fusion.config.vision_width, fusion.config.text_width, fusion.config.hidden_size) == (1024, 768, 1024)


def _numbers(value, path=""):
    """(path, number) for every int/float in a JSON value (bools excluded)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _numbers(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _numbers(v, f"{path}[{i}]")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield path, value


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.mark.slow
def test_cpu_smoke_writes_every_section(tmp_path):
    out = tmp_path / "check.json"
    returned = main(["--cpu-smoke", "--out", str(out)])
    results = json.loads(out.read_text())
    assert results == json.loads(json.dumps(returned))
    assert results["mode"] == "cpu-smoke"
    for key in ("environment", "settings", "geometry", "training", "official", "generation", "emosym", "elapsed_s"):
        assert results[key], key
    assert {"device_name", "torch", "diffusers"} <= set(results["environment"])
    assert results["geometry"]["classifier"]["preset"] == "tiny"
    bad = [(p, v) for p, v in _numbers(results) if not math.isfinite(v)]
    assert not bad, bad

    configs = results["training"]["configs"]
    seen = {(c["precision"], c["batch"], c["gradient_checkpointing"]) for c in configs}
    assert seen == {(p, b, k) for p in ("bf16", "fp16") for b in (1, 2) for k in (False, True)}
    for c in configs + [results["official"]["official"]]:
        for key in ("s_per_step", "images_per_s", "peak_bytes", "resident_before_bytes", "trainable_parameters"):
            assert _positive(c[key]), (c["precision"], c["batch"], key, c[key])
        assert c["losses_finite"] and c["timed_steps"] == len(c["s_per_step_all"]) == 1
        if not c["official_unet_requires_grad"]:
            assert c["unet_grad_bytes"] == 0  # ours: the frozen UNet holds no gradients
    ratios = results["training"]["ratios"]
    for precision in ("bf16", "fp16"):
        assert len(ratios[precision]) == 6 and all(_positive(v) for v in ratios[precision].values())
    assert all(_positive(v) for v in ratios["bf16_over_fp16_s_per_step"].values())

    official = results["official"]
    assert official["official"]["official_unet_requires_grad"] and official["official"]["batch"] == 1
    # the official setting keeps the UNet's gradients: one per parameter, in the UNet's fp16
    assert official["official"]["unet_grad_bytes"] == 2 * results["geometry"]["unet"]["parameters"]
    assert official["ours_same_setting"]["unet_grad_bytes"] == 0
    for key in ("peak_ratio_official_over_ours", "s_per_step_ratio_official_over_ours",
                "images_per_s_ours_best_over_official"):
        assert _positive(official[key]), key

    emosym = results["emosym"]
    assert emosym["mllm"] == "tiny Qwen2-VL" and [c["batch"] for c in emosym["configs"]] == [1, 2]
    assert 0 < emosym["trainable_parameters"] < emosym["parameters"]
    for c in emosym["configs"]:
        assert c["losses_finite"] and c["image_tokens"] == 16  # 64 px: 8 x 8 patches of 8 px, merged 2 x 2
        assert _positive(c["s_per_step"]) and _positive(c["peak_bytes"])

    generation = results["generation"]
    assert generation["scheduler"] == "UniPCMultistepScheduler" and generation["dtype"] == "fp16"
    assert set(generation["batches"]) == {"batch_1", "batch_2"}
    for entry in generation["batches"].values():
        assert all(_positive(v) for v in entry["s_per_image"].values())
        assert _positive(entry["ratio_vs_stock"]) and _positive(entry["peak_ratio_vs_stock"])
