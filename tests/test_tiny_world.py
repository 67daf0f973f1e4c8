"""UniEmo-Tiny: the bundled model answers offline, and the whole from-nothing build runs (--smoke)."""

import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "assets" / "uniemo-tiny"


@pytest.fixture(scope="module")
def bundle():
    if not (BUNDLE / "uniemo.json").is_file():
        pytest.fail(f"the bundled model is missing at {BUNDLE}: build it with python train/tiny_world.py")
    from uniemo import UniEmoPipeline

    return UniEmoPipeline.from_pretrained(BUNDLE)


def test_bundle_is_small_and_complete():
    size = sum(p.stat().st_size for p in BUNDLE.rglob("*") if p.is_file())
    assert size < 40e6, f"the bundle is {size / 1e6:.1f} MB"
    info = json.loads((BUNDLE / "uniemo.json").read_text())
    assert {"classifier", "fusion", "emotion_space", "correlation", "diffusion"} <= set(info["components"])
    assert not list(BUNDLE.rglob("*.bin")) and not list(BUNDLE.rglob("*.pt")), "only safetensors and JSON"


def test_bundle_recognises_fresh_emoshapes_images(bundle, tmp_path):
    """Images the model never saw (another seed of the world) are classified far above chance (12.5 %)."""
    from uniemo.data import build_dataset
    from uniemo.data.emoshapes import EmoShapesConfig, generate_emoshapes

    root = generate_emoshapes(tmp_path / "fresh", EmoShapesConfig(num_train=8, num_val=8, num_test=80, seed=12345,
                                                                  label_noise=0.0), progress=False)
    test = build_dataset("emoshapes", root, "test")
    hits = sum(bundle.classify(test[i]["pixel_values"]).label == test.labels[test.entries[i].label]
               for i in range(len(test)))
    assert hits / len(test) >= 0.6, hits / len(test)


def test_bundle_answers_every_call_offline(bundle):
    from PIL import Image

    pred = bundle.classify(Image.new("RGB", (64, 64), (200, 40, 40)))
    assert abs(sum(pred.probs.values()) - 1) < 1e-5 and pred.scene_attention.shape == (8, 8)
    for images in (bundle.generate("awe", num_images=2, seed=0, num_inference_steps=4),
                   bundle.transfer("fear", bundle.attributes.objects[0], seed=0, num_inference_steps=4),
                   bundle.fuse("amusement", "sadness", weight=0.5, seed=0, num_inference_steps=4)):
        assert images and all(isinstance(im, Image.Image) for im in images)
    a = bundle.generate("awe", seed=7, num_inference_steps=4)[0]
    b = bundle.generate("awe", seed=7, num_inference_steps=4)[0]
    assert np.array_equal(np.asarray(a), np.asarray(b))


def test_report_numbers_are_recorded():
    report = json.loads((BUNDLE / "report.json").read_text())
    assert report["classification"]["test_top1"] >= 0.85
    assert "test_top1_without_expert_queries" in report["classification"]
    for key in ("recognised_by_classifier", "recognised_by_probe"):
        assert 0.0 <= report["generation"][key] <= 1.0


@pytest.mark.slow
def test_smoke_build_from_nothing(tmp_path):
    """The same steps as the full build with tiny step counts: data, CLIP, SD, stage 1, probe, stage 2."""
    from train.tiny_world import main
    from uniemo import UniEmoPipeline

    out = tmp_path / "bundle"
    summary = main(["--smoke", "--out", str(out), f"work_dir={tmp_path / 'work'}", "threads=2"])
    assert set(summary["timings_seconds"]) >= {"emoshapes", "clip", "sd", "stage1", "probe", "joint"}
    pipe = UniEmoPipeline.from_pretrained(out)
    assert len(pipe.generate("fear", num_images=1, num_inference_steps=2)) == 1
    assert (out / "clip" / "config.json").is_file() and (out / "probe" / "model.safetensors").is_file()
    log = [json.loads(line) for line in (tmp_path / "work" / "tiny_world.jsonl").read_text().splitlines()]
    assert log[-1]["phase"] == "done"
