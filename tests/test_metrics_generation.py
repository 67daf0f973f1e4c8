"""Generation metrics (uniemo/metrics.py), their weight loading (uniemo/features.py, uniemo/scoring.py), and
eval/generate.py + eval/score.py end to end on the tiny model. Offline: a tiny feature extractor registered in
torch-fidelity stands in for InceptionV3, a random AlexNet trunk for LPIPS's, the probe run's tiny CLIP for CLIP.
"""

import json
import math
import pickle
from urllib.error import URLError

import numpy as np
import pytest
import torch
import torch_fidelity
from PIL import Image
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from eval import generate, score
from uniemo import features, score_settings
from uniemo.metrics import (
    accumulating_pool_pairs,
    emotion_accuracy,
    emotion_mean,
    feature_statistics,
    frechet_distance,
    semantic_clarity,
    semantic_diversity,
    within_emotion_pairs,
)
from uniemo.scoring import load_emogen_head

TINY_EXTRACTOR = "uniemo-tiny-test"


class TinyFeatures(FeatureExtractorBase):
    """8-d features: a fixed random projection of 4x4 average-pooled pixels (uint8 NCHW in, any size)."""

    def __init__(self, name, features_list, **kwargs):
        super().__init__(name, features_list)
        self.register_buffer("proj", torch.randn(48, 8, generator=torch.Generator().manual_seed(0)))

    @staticmethod
    def get_provided_features_list():
        return ("feat",)

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return "feat"

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 3, 8, 8, dtype=torch.uint8)

    def forward(self, x):
        pooled = torch.nn.functional.adaptive_avg_pool2d(x.float() / 255.0, 4).flatten(1)  # (B, 48)
        return (pooled @ self.proj,)


if TINY_EXTRACTOR not in FEATURE_EXTRACTORS_REGISTRY:  # registration is once per process
    torch_fidelity.register_feature_extractor(TINY_EXTRACTOR, TinyFeatures)


class ImageSet(torch.utils.data.Dataset):
    def __init__(self, images):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i]


def _images(n=64, shift=0, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = 60 + 80 * torch.rand(n, 3, 16, 16, generator=g)  # values in [60, 140], room to shift without clipping
    return (x + shift).clamp(0, 255).to(torch.uint8)


def _features(images):
    with torch.no_grad():
        return TinyFeatures(TINY_EXTRACTOR, ["feat"])(images)[0]


# ---------------------------------------------------------------------------------------------- FID


def test_frechet_distance_by_hand_and_parity_with_torch_fidelity():
    # 1-D: (0 - 3)² + 1 + 4 - 2·sqrt(1·4) = 10
    assert frechet_distance(np.array([0.0]), np.array([[1.0]]), np.array([3.0]), np.array([[4.0]])) == pytest.approx(10)
    a, b = _images(seed=0), _images(shift=30, seed=1)
    ours = frechet_distance(*feature_statistics(_features(a)), *feature_statistics(_features(b)))
    theirs = torch_fidelity.calculate_metrics(input1=ImageSet(a), input2=ImageSet(b), cuda=False, fid=True,
                                              feature_extractor=TINY_EXTRACTOR, cache=False, verbose=False,
                                              save_cpu_ram=True)["frechet_inception_distance"]
    assert ours == pytest.approx(theirs, rel=1e-6, abs=1e-9)


def test_fid_of_a_set_with_itself_is_zero_and_grows_with_the_shift():
    base = _features(_images())
    stats = feature_statistics(base)
    assert abs(frechet_distance(*stats, *stats)) < 1e-8
    values = [frechet_distance(*stats, *feature_statistics(_features(_images(shift=s)))) for s in (0, 10, 20, 40, 80)]
    assert values[0] == pytest.approx(0, abs=1e-8)
    assert all(b > a for a, b in zip(values, values[1:])), values


def test_inception_weights_file_is_passed_to_torch_fidelity(tmp_path, monkeypatch):
    weights = tmp_path / "weights-inception.pth"
    torch.save({"conv.weight": torch.zeros(1)}, weights)
    seen = {}

    def fake_create(name, features, cuda=True, **kwargs):
        seen.update(name=name, features=features, cuda=cuda, **kwargs)
        return TinyFeatures(TINY_EXTRACTOR, ["feat"])

    monkeypatch.setattr(torch_fidelity.utils, "create_feature_extractor", fake_create)
    _, layer = features.fid_feature_extractor(score_settings.DEFAULT_FID_EXTRACTOR, str(weights),
                                              torch.device("cpu"))
    assert seen["feature_extractor_weights_path"] == str(weights)
    assert seen["name"] == "inception-v3-compat" and seen["features"] == ["2048"] and layer == "2048"
    # a weights file holding more than tensors is refused before torch-fidelity unpickles it
    evil = tmp_path / "evil.pth"
    torch.save({"w": torch.zeros(1), "x": ImageSet([])}, evil)
    with pytest.raises(pickle.UnpicklingError):
        features.fid_feature_extractor(score_settings.DEFAULT_FID_EXTRACTOR, str(evil), torch.device("cpu"))


def test_offline_inception_without_a_file_is_a_clear_error(monkeypatch):
    import torch_fidelity.feature_extractor_inceptionv3 as inception

    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(inception, "load_state_dict_from_url", offline)
    with pytest.raises(features.MissingWeightsError, match="--inception-weights"):
        features.fid_feature_extractor(score_settings.DEFAULT_FID_EXTRACTOR, None, torch.device("cpu"))


# ------------------------------------------------------------------------------------ LPIPS / Sem-D pairs


def test_within_emotion_pairs_never_cross_emotions_and_are_reproducible():
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3, 3, 3])  # emotion 2 has one image: no pair
    pairs = within_emotion_pairs(labels, 7, seed=5)
    assert pairs.shape == (21, 2)
    assert torch.equal(labels[pairs[:, 0]], labels[pairs[:, 1]])
    assert (pairs[:, 0] != pairs[:, 1]).all()
    assert torch.bincount(labels[pairs[:, 0]], minlength=4).tolist() == [7, 7, 0, 7]
    assert torch.equal(pairs, within_emotion_pairs(labels, 7, seed=5))
    assert not torch.equal(pairs, within_emotion_pairs(labels, 7, seed=6))


def test_emogen_compat_pairs_leak_into_earlier_emotions():
    labels = torch.tensor([0] * 5 + [1] * 5 + [2] * 5)
    pairs, owners = accumulating_pool_pairs(labels, 20, seed=0)
    assert torch.bincount(owners).tolist() == [20, 20, 20]
    assert (labels[pairs].max(dim=1).values <= owners).all()  # emotion k's pool: emotions 0..k
    assert (labels[pairs[:, 0]] != labels[pairs[:, 1]]).any()  # ... so pairs do cross emotions
    assert torch.equal(pairs, accumulating_pool_pairs(labels, 20, seed=0)[0])


# ------------------------------------------------------------------------------- hand-computed values


def test_semantic_diversity_by_hand():
    embeds = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    pairs = torch.tensor([[0, 1], [0, 2]])
    out = semantic_diversity(embeds, pairs, torch.tensor([0, 0]))
    assert out["cosine"] == pytest.approx((1.0 + (1 - 1 / math.sqrt(2))) / 2)
    assert out["mse"] == pytest.approx((1.0 + 0.5) / 2)  # mean over dims of (1, 1)² and (0, 1)²
    # per emotion first, then over emotions: one pair each here, so the same numbers
    split = semantic_diversity(embeds, pairs, torch.tensor([3, 5]))
    assert split["per_group"][3]["cosine"] == pytest.approx(1.0) and split["mse"] == pytest.approx(0.75)
    overall, per = emotion_mean([1.0, 3.0, 10.0], [0, 0, 1])
    assert per == {0: 2.0, 1: 10.0} and overall == pytest.approx(6.0)  # not the pair mean 14/3


def test_semantic_clarity_and_emotion_accuracy_by_hand():
    places = torch.tensor([[0.7, 0.3], [0.2, 0.8]])
    imagenet = torch.tensor([[0.5, 0.25, 0.25], [0.9, 0.05, 0.05]])
    assert semantic_clarity(places, imagenet) == pytest.approx((0.7 + 0.9) / 2)
    assert semantic_clarity(places) == pytest.approx((0.7 + 0.8) / 2)
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    out = emotion_accuracy(logits, torch.tensor([0, 0, 0]))
    assert out["accuracy"] == pytest.approx(2 / 3)
    p = torch.tensor(2.0).sigmoid().item()  # softmax of (2, 0) for the first class
    assert out["score"] == pytest.approx((p + (1 - p) + torch.tensor(3.0).sigmoid().item()) / 3)
    assert out["per_class_accuracy"] == {0: pytest.approx(2 / 3)}


# ------------------------------------------------------------------------------------------ weights


def test_emogen_head_loads_with_weights_only(tmp_path):
    g = torch.Generator().manual_seed(0)
    state = {"fc.weight": torch.randn(8, 768, generator=g), "fc.bias": torch.randn(8, generator=g)}
    path = tmp_path / "emo_cls.pth"
    torch.save(state, path)
    head = load_emogen_head(path)
    assert head.config.layers == 1 and head.config.normalize_input is False and head.config.embed_dim == 768
    x = torch.randn(3, 768, generator=g) * 5  # raw, unnormalised CLIP features
    assert torch.allclose(head(x), x @ state["fc.weight"].T + state["fc.bias"], atol=1e-5)
    # DataParallel prefixes and a state_dict wrapper load the same
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, wrapped)
    assert torch.equal(load_emogen_head(wrapped).fc.weight, state["fc.weight"])
    # anything but tensors and plain containers is refused (weights_only)
    evil = tmp_path / "evil.pth"
    torch.save({**state, "x": ImageSet([])}, evil)
    with pytest.raises(pickle.UnpicklingError):
        load_emogen_head(evil)
    with pytest.raises(ValueError, match="fc.weight"):
        torch.save({"other.weight": torch.zeros(8, 4)}, tmp_path / "bad.pth")
        load_emogen_head(tmp_path / "bad.pth")


def test_resnet_checkpoints_unwrap_and_lpips_trunk_loads(tmp_path, monkeypatch):
    import torchvision

    # CSAIL's Places365 file: {"state_dict": {"module.conv1.weight": ...}, "epoch": ...}
    small = torch.nn.Linear(2, 3)
    ckpt = {"epoch": 90, "arch": "resnet50", "state_dict": {f"module.{k}": v for k, v in small.state_dict().items()}}
    torch.save(ckpt, tmp_path / "places.pth.tar")
    monkeypatch.setattr(features, "build_resnet50", lambda num_classes: torch.nn.Linear(2, num_classes))
    loaded = features.load_resnet50(str(tmp_path / "places.pth.tar"), 3)
    assert torch.equal(loaded.weight, small.weight)
    # the AlexNet trunk of LPIPS is filled from torchvision's AlexNet weights, layer by layer
    alexnet = torchvision.models.alexnet()
    monkeypatch.setattr(features, "alexnet_state_dict", lambda path: (alexnet.state_dict(), "memory"))
    model, source = features.build_lpips(None, random_trunk=False)
    assert source == "memory"
    assert torch.equal(model.net.slice1[0].weight, alexnet.features[0].weight)
    assert torch.equal(getattr(model.net.slice5, "10").weight, alexnet.features[10].weight)  # names kept


def test_lpips_without_weights_offline_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))

    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(features.MissingWeightsError, match="--alexnet-weights"):
        features.alexnet_state_dict(None)


# --------------------------------------------------------------------------------- end to end (tiny)


def test_generate_then_score_on_the_tiny_model(tiny_model_dir, tiny_correlation_dir, learnable_emoset, tmp_path):
    out = tmp_path / "gen"
    # two emotions keep it quick; their seeds still follow their places among the model's eight
    args = ["--model", str(tiny_model_dir), "--out", str(out), "--per-emotion", "2", "--steps", "2", "--seed", "3",
            "--scheduler", "ddim", "--emotions", "fear,amusement", "--transfer-nouns", "coffee cup",
            "--fusion-pairs", "amusement:fear,fear:awe", "--fusion-weights", "0.5", "--batch-size", "16"]
    info = generate.main(args)
    assert info["counts"] == {"generate": 4, "transfer": 4, "fusion": 4}
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(records) == 12 and all((out / r["path"]).is_file() for r in records)
    emotions = info["emotions"]
    assert [r["emotion"] for r in records if r["kind"] == "generate"] == ["amusement"] * 2 + ["fear"] * 2
    for r in records:
        first = r["emotions"][0]
        assert r["seed"] == 3 + 1000 * emotions.index(first) + r["index"]
    assert (out / "fear" / "fear_0001.png").is_file()
    assert (out / "transfer" / "coffee_cup" / "amusement" / "amusement_0000.png").is_file()
    assert (out / "fusion" / "amusement+fear" / "w0.50" / "amusement+fear_w0.50_0001.png").is_file()
    assert (out / "fusion" / "fear+awe" / "w0.50" / "fear+awe_w0.50_0000.png").is_file()
    # image i of an emotion is the pipeline's image with that seed, alone
    from uniemo import UniEmoPipeline

    pipe = UniEmoPipeline.from_pretrained(tiny_model_dir)
    pipe.set_scheduler("ddim")
    alone = pipe.generate("fear", num_images=1, seed=3 + 1000 * emotions.index("fear") + 1, num_inference_steps=2)[0]
    batched = np.asarray(Image.open(out / "fear" / "fear_0001.png").convert("RGB")).astype(int)
    print("max pixel difference, alone against in its batch:", np.abs(np.asarray(alone).astype(int) - batched).max())
    assert np.abs(np.asarray(alone).astype(int) - batched).max() <= 1  # a batched matmul may round differently
    assert generate.main(args)["generated_now"] == 0  # resumable: nothing left to do
    with pytest.raises(ValueError, match="other settings"):
        generate.main(args[:-2] + ["--steps", "3"])

    common = ["--generated", str(out), "--fid-feature-extractor", TINY_EXTRACTOR, "--fid-size", "16",
              "--reference-from-dataset", f"emoset:{learnable_emoset}:test", "--lpips-random-trunk",
              "--emo-probe", str(tiny_correlation_dir), "--pairs", "4",
              "--cache-dir", str(tmp_path / "fid-cache")]
    result = score.main(common + ["--out", str(tmp_path / "scores.json")])
    saved = json.loads((tmp_path / "scores.json").read_text())
    assert saved["summary"] == pytest.approx(result["summary"])
    # the FID key names its extractor: fid_<name> for a torch-fidelity extractor other than Inception
    assert set(result["summary"]) == {"fid_uniemo_tiny_test", "lpips_random_trunk", "emo_a", "sem_c_clip",
                                      "sem_d_mse", "sem_d_cosine"}
    assert result["metrics"]["fid"]["reference_cache"] == "miss"
    assert len(list((tmp_path / "fid-cache").iterdir())) == 1
    assert set(result["metrics"]["fid"]["per_emotion"]) == {"amusement", "fear"}
    assert result["metrics"]["lpips"]["num_pairs"] == 8 and result["metrics"]["lpips"]["random_trunk"]
    assert 0.0 <= result["summary"]["emo_a"] <= 1.0 and 0.0 < result["summary"]["sem_c_clip"] <= 1.0
    assert result["protocol"]["name"] == "corrected" and result["model"] == str(tiny_model_dir)
    assert result["num_images"] == {"amusement": 2, "fear": 2}

    compat = score.main(common + ["--emogen-compat", "--metrics", "lpips,sem_d", "--out", str(tmp_path / "c.json")])
    assert compat["protocol"]["name"] == "emogen-compat" and compat["protocol"]["quirks"]
    assert compat["metrics"]["lpips"]["input_range"].startswith("[0, 1]")
    assert compat["metrics"]["lpips"]["num_pairs"] == 2 * score_settings.EMOGEN_COMPAT_PAIRS
    assert compat["summary"]["sem_d_mse"] != pytest.approx(result["summary"]["sem_d_mse"])

    with pytest.raises(ValueError, match="reference"):
        score.main(["--generated", str(out), "--metrics", "fid"])
    with pytest.raises(ValueError, match="emo-probe"):
        score.main(["--generated", str(out), "--metrics", "emo_a"])


def test_lpips_random_trunk_is_the_same_every_time():
    """The offline stand-in is reproducible: the same trunk in every process, and the caller's RNG untouched."""
    import torch

    from uniemo import features

    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a, _ = features.build_lpips(None, random_trunk=True)
    assert torch.equal(torch.rand(3), expected_next)
    b, _ = features.build_lpips(None, random_trunk=True)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name
