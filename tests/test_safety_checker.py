"""Stable Diffusion's safety checker: off unless asked; when asked, it runs on the pipeline's device on every path
(composed noun guidance included), and flagged images are recorded and left out of the scores."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from uniemo import UniEmoPipeline


@pytest.fixture(scope="module")
def checked_model_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model with a tiny safety checker in diffusion/ whose thresholds flag every image."""
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessor

    from uniemo.diffusion import load_stable_diffusion

    folder = tmp_path_factory.mktemp("checked") / "model"
    shutil.copytree(tiny_model_dir, folder)
    sd = load_stable_diffusion(folder / "diffusion")
    tower = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 1, "num_attention_heads": 4}
    checker = StableDiffusionSafetyChecker(CLIPConfig(
        text_config={**tower, "vocab_size": 99}, vision_config={**tower, "image_size": 32, "patch_size": 8},
        projection_dim=16))
    with torch.no_grad():
        checker.concept_embeds_weights.fill_(-10.0)  # cos > -10 for every concept: everything is flagged
    features = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    sd.register_modules(safety_checker=checker, feature_extractor=features)
    sd.register_to_config(requires_safety_checker=True)
    shutil.rmtree(folder / "diffusion")
    sd.save_pretrained(folder / "diffusion")
    return folder


def test_off_by_default_even_when_the_base_has_one(checked_model_dir):
    pipe = UniEmoPipeline.from_pretrained(checked_model_dir)
    assert pipe.sd.safety_checker is None
    image = pipe.generate("awe", num_inference_steps=2)[0]
    assert "nsfw" not in image.info and np.asarray(image).any()


def test_asking_for_it_on_a_base_without_one_is_an_error(tiny_model_dir):
    with pytest.raises(ValueError, match="no safety checker"):
        UniEmoPipeline.from_pretrained(tiny_model_dir, safety_checker=True)


def test_when_on_every_path_is_checked_on_the_pipelines_device(checked_model_dir):
    pipe = UniEmoPipeline.from_pretrained(checked_model_dir, safety_checker=True)
    assert pipe.sd.safety_checker.device == pipe.device
    kw = dict(num_inference_steps=2, seed=0)
    outputs = {
        "generate": pipe.generate("awe", num_images=2, **kw),
        "transfer": pipe.transfer("fear", "cup", **kw),
        "transfer, noun guidance": pipe.transfer("fear", "cup", guidance_scale=4.0, noun_guidance_scale=9.0, **kw),
        "fuse": pipe.fuse("awe", "fear", weight=0.5, **kw),
    }
    for path, images in outputs.items():
        for image in images:
            assert image.info.get("nsfw") is True, path
            assert not np.asarray(image).any(), f"{path}: a flagged image comes back black"


def test_flagged_images_are_recorded_and_left_out_of_the_scores(checked_model_dir, tmp_path):
    from eval import generate
    from uniemo.generation_scores import read_generated

    out = tmp_path / "gen"
    info = generate.main(["--model", str(checked_model_dir), "--out", str(out), "--per-emotion", "1",
                          "--emotions", "awe,fear", "--steps", "2", "--device", "cpu", "--safety-checker"])
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert info["flagged_nsfw"] == 2 and all(r["nsfw"] is True for r in records)
    with pytest.raises(ValueError, match="flagged by the safety checker"):
        read_generated(out, "generate")
    # one image unflagged: scored; the other excluded and counted
    records[0]["nsfw"] = False
    (out / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    emotions, paths, labels, meta = read_generated(out, "generate")
    assert len(paths) == 1 and meta["excluded_nsfw"] == 1
