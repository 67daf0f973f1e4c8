"""The emotion probe and the α table (docs/method.md section 4): hand-computed α, matching, files, train/probe.py."""

import json
import math
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from uniemo.constants import EMOTIONS
from uniemo.correlation import CorrelationTable, build_correlation_table
from uniemo.probe import (
    EmotionProbe,
    EmotionProbeConfig,
    clip_image_embeddings,
    probe_accuracy,
    probe_probabilities,
    train_probe,
)

ROOT = Path(__file__).resolve().parents[1]
EMOTIONS3 = ("joy", "calm", "fear")


class FakeTextEncoder:
    """Fixed unit vectors per name, so the table's text embeddings are known exactly."""

    def __init__(self, vectors: dict[str, list[float]]):
        self.vectors = {k: F.normalize(torch.tensor(v, dtype=torch.float32), dim=0) for k, v in vectors.items()}
        self.dim = len(next(iter(vectors.values())))

    def embed(self, names):
        if not names:
            return torch.zeros(0, self.dim)
        return torch.stack([self.vectors[n] for n in names])


# Four training images with known probe probabilities over three emotions. Image 2 lists "cake" twice
# (it still counts once); image 3 has no scene (it counts for no scene) but does carry "balloon".
PROBS = torch.tensor([
    [0.5, 0.3, 0.2],
    [0.1, 0.6, 0.3],
    [0.2, 0.2, 0.6],
    [0.7, 0.1, 0.2],
])
SCENES = ["sky", "sky", "sea", None]
OBJECTS = [["cake", "balloon"], ["cake"], ["spider", "cake", "cake"], ["balloon"]]
ENCODER = FakeTextEncoder({
    "sea": [1, 0, 0, 0], "sky": [0, 1, 0, 0],
    "balloon": [1, 0, 0, 0], "cake": [0, 1, 0, 0], "spider": [0, 0, 1, 0],
})


def _geometric(*rows):
    """Normalised geometric mean of probability rows, written out by hand."""
    g = [math.prod(r[e] for r in rows) ** (1 / len(rows)) for e in range(3)]
    return [x / sum(g) for x in g]


def test_alpha_prob_mode_matches_hand_computation():
    table = build_correlation_table(PROBS, SCENES, OBJECTS, ENCODER, mode="prob", emotions=EMOTIONS3)
    assert table.scene_names == ["sea", "sky"] and table.scene_counts == [1, 2]
    assert table.object_names == ["balloon", "cake", "spider"] and table.object_counts == [2, 3, 1]
    expected_scene = [
        [0.2, 0.2, 0.6],                          # sea: image 2
        [(0.5 + 0.1) / 2, (0.3 + 0.6) / 2, (0.2 + 0.3) / 2],  # sky: images 0, 1 (not image 3: no scene)
    ]
    expected_object = [
        [(0.5 + 0.7) / 2, (0.3 + 0.1) / 2, (0.2 + 0.2) / 2],  # balloon: images 0, 3
        [(0.5 + 0.1 + 0.2) / 3, (0.3 + 0.6 + 0.2) / 3, (0.2 + 0.3 + 0.6) / 3],  # cake: 0, 1, 2 (2 once)
        [0.2, 0.2, 0.6],                          # spider: image 2
    ]
    torch.testing.assert_close(table.scene_alpha, torch.tensor(expected_scene), rtol=0, atol=1e-6)
    torch.testing.assert_close(table.object_alpha, torch.tensor(expected_object), rtol=0, atol=1e-6)
    torch.testing.assert_close(table.scene_text_embeds, ENCODER.embed(["sea", "sky"]))
    assert table.mode == "prob" and table.emotions == EMOTIONS3


def test_alpha_log_mode_is_the_normalised_geometric_mean():
    table = build_correlation_table(PROBS, SCENES, OBJECTS, ENCODER, mode="log", emotions=EMOTIONS3)
    p = PROBS.tolist()
    expected_scene = [_geometric(p[2]), _geometric(p[0], p[1])]
    expected_object = [_geometric(p[0], p[3]), _geometric(p[0], p[1], p[2]), _geometric(p[2])]
    torch.testing.assert_close(table.scene_alpha, torch.tensor(expected_scene), rtol=0, atol=1e-6)
    torch.testing.assert_close(table.object_alpha, torch.tensor(expected_object), rtol=0, atol=1e-6)
    # rows are distributions, unlike the raw mean log-probabilities (all <= 0)
    torch.testing.assert_close(table.scene_alpha.sum(-1), torch.ones(2))
    assert (table.object_alpha > 0).all()


def test_min_count_filters_rare_attributes():
    table = build_correlation_table(PROBS, SCENES, OBJECTS, ENCODER, min_count=2, emotions=EMOTIONS3)
    assert table.scene_names == ["sky"] and table.scene_counts == [2]
    assert table.object_names == ["balloon", "cake"] and table.object_counts == [2, 3]
    torch.testing.assert_close(table.scene_alpha, torch.tensor([[0.3, 0.45, 0.25]]), rtol=0, atol=1e-6)
    assert table.scene_text_embeds.shape == (1, 4)
    empty = build_correlation_table(PROBS, SCENES, OBJECTS, ENCODER, min_count=4, emotions=EMOTIONS3)
    assert empty.is_empty() and empty.scene_alpha.shape == (0, 3) and empty.object_text_embeds.shape == (0, 4)


def test_build_rejects_bad_inputs():
    with pytest.raises(ValueError, match="not logits"):
        build_correlation_table(PROBS * 5 - 1, SCENES, OBJECTS, ENCODER, emotions=EMOTIONS3)
    with pytest.raises(ValueError, match="mode"):
        build_correlation_table(PROBS, SCENES, OBJECTS, ENCODER, mode="mean", emotions=EMOTIONS3)
    with pytest.raises(ValueError, match="emotions="):
        build_correlation_table(PROBS, SCENES, OBJECTS, ENCODER)  # 3 classes, no names
    with pytest.raises(ValueError, match="4 probability rows"):
        build_correlation_table(PROBS, SCENES[:3], OBJECTS, ENCODER, emotions=EMOTIONS3)


@pytest.fixture
def hand_table():
    """Orthogonal text embeddings (E = 4) and known α rows over three emotions."""
    eye = torch.eye(4)
    return CorrelationTable(
        scene_names=["sea", "sky"], object_names=["balloon", "cake", "spider"],
        scene_text_embeds=eye[:2], object_text_embeds=eye[1:],
        scene_alpha=torch.tensor([[0.1, 0.2, 0.7], [0.6, 0.3, 0.1]]),
        object_alpha=torch.tensor([[0.8, 0.1, 0.1], [0.2, 0.5, 0.3], [0.05, 0.05, 0.9]]),
        scene_counts=[3, 5], object_counts=[4, 2, 7], emotions=EMOTIONS3,
    )


def test_match_and_lookup(hand_table):
    scene_points = F.normalize(torch.tensor([[0.9, 0.1, 0.0, 0.0], [0.2, 0.8, 0.3, 0.0]]), dim=-1)
    object_points = F.normalize(torch.tensor([[0.0, 0.0, 0.0, 1.0], [0.0, 1.0, 0.5, 0.0]]), dim=-1)
    scene_idx, object_idx, scene_sim, object_sim = hand_table.match(scene_points, object_points)
    assert scene_idx.tolist() == [0, 1] and object_idx.tolist() == [2, 0]
    torch.testing.assert_close(scene_sim, torch.tensor([0.9 / math.sqrt(0.82), 0.8 / math.sqrt(0.77)]))
    torch.testing.assert_close(object_sim, torch.tensor([1.0, 1.0 / math.sqrt(1.25)]))

    alpha_scene, alpha_object = hand_table.lookup(scene_idx, object_idx, torch.tensor([2, 0]))
    torch.testing.assert_close(alpha_scene, torch.tensor([0.7, 0.6]))  # sea/fear, sky/joy
    torch.testing.assert_close(alpha_object, torch.tensor([0.9, 0.8]))  # spider/fear, balloon/joy
    assert not alpha_scene.requires_grad and not alpha_object.requires_grad

    # one emotion for the whole batch; gradients from the points never reach α
    points = scene_points.clone().requires_grad_(True)
    alpha_scene, alpha_object = hand_table.emotion_correlation(points, object_points, 1)
    torch.testing.assert_close(alpha_scene, torch.tensor([0.2, 0.3]))
    torch.testing.assert_close(alpha_object, torch.tensor([0.05, 0.1]))
    assert alpha_scene.grad_fn is None

    with pytest.raises(ValueError, match="emotion indices"):
        hand_table.lookup(scene_idx, object_idx, 3)
    with pytest.raises(ValueError, match="another CLIP text tower"):
        hand_table.match(torch.ones(2, 5), torch.ones(2, 5))


def test_nearest_is_ordered_and_clipped(hand_table):
    point = F.normalize(torch.tensor([0.0, 1.0, 3.0, 2.0]), dim=0)  # spider > cake > balloon... by cosine
    (row,) = hand_table.nearest(point, "object", k=2)
    assert [name for name, _ in row] == ["cake", "spider"]
    torch.testing.assert_close(torch.tensor([s for _, s in row]), point[[2, 3]])
    rows = hand_table.nearest(torch.stack([point, -point]), "object", k=10)  # k beyond the base is clipped
    assert [n for n, _ in rows[0]] == ["cake", "spider", "balloon"]
    assert [n for n, _ in rows[1]] == ["balloon", "spider", "cake"]
    assert all(a[1] >= b[1] for r in rows for a, b in zip(r, r[1:]))
    with pytest.raises(ValueError, match="kind"):
        hand_table.nearest(point, "colour")


def test_empty_base_says_why():
    table = build_correlation_table(PROBS, [None] * 4, OBJECTS, ENCODER, emotions=EMOTIONS3)
    with pytest.raises(ValueError, match="no scene attributes"):
        table.match(torch.ones(1, 4), torch.ones(1, 4))


def test_save_load_round_trip_reads_no_pickle(tmp_path, hand_table, monkeypatch):
    hand_table.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["correlation.json", "correlation.safetensors"]
    meta = json.loads((tmp_path / "correlation.json").read_text())
    assert meta["format_version"] == 1 and meta["scene_names"] == ["sea", "sky"] and meta["mode"] == "prob"

    def refuse(*args, **kwargs):
        raise AssertionError("pickle must not be used to load a correlation table")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    loaded = CorrelationTable.load(tmp_path)
    for name in ("scene_names", "object_names", "scene_counts", "object_counts", "emotions", "mode"):
        assert getattr(loaded, name) == getattr(hand_table, name), name
    for name in ("scene_text_embeds", "object_text_embeds", "scene_alpha", "object_alpha"):
        assert torch.equal(getattr(loaded, name), getattr(hand_table, name)), name


def test_load_errors_are_clear(tmp_path, hand_table):
    with pytest.raises(FileNotFoundError, match="correlation.json"):
        CorrelationTable.load(tmp_path)
    hand_table.save(tmp_path)
    (tmp_path / "correlation.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="correlation.safetensors"):
        CorrelationTable.load(tmp_path)
    hand_table.save(tmp_path)
    meta = json.loads((tmp_path / "correlation.json").read_text())
    (tmp_path / "correlation.json").write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(ValueError, match="newer UniEmo"):
        CorrelationTable.load(tmp_path)
    (tmp_path / "correlation.json").write_text(json.dumps({**meta, "scene_names": ["sea"], "scene_counts": [3]}))
    with pytest.raises(ValueError, match="scene_text_embeds"):
        CorrelationTable.load(tmp_path)


def _separable(n_per_class=40, dim=16, classes=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(classes, dim, generator=g)
    labels = torch.arange(classes).repeat_interleave(n_per_class)
    embeds = F.normalize(centers[labels] + 0.15 * torch.randn(len(labels), dim, generator=g), dim=-1)
    return embeds, labels


@pytest.mark.parametrize("layers", [1, 2])
def test_probe_learns_separable_embeddings(layers):
    embeds, labels = _separable(seed=0)
    test_embeds, test_labels = _separable(n_per_class=10, seed=0)  # same centers, the first draws
    config = EmotionProbeConfig(embed_dim=16, hidden=32, layers=layers)
    probe = train_probe(embeds, labels, config, epochs=20, lr=1e-2, batch_size=32, seed=0)
    assert probe_accuracy(probe, embeds, labels) >= 0.97
    assert probe_accuracy(probe, test_embeds, test_labels) >= 0.95
    probs = probe_probabilities(probe, embeds)
    assert probs.shape == (320, 8)
    torch.testing.assert_close(probs.sum(-1), torch.ones(320))


def test_probe_training_is_deterministic():
    embeds, labels = _separable(n_per_class=8)
    config = EmotionProbeConfig(embed_dim=16, hidden=32)
    state = torch.random.get_rng_state()
    first = train_probe(embeds, labels, config, epochs=3, batch_size=16, seed=3)
    assert torch.equal(state, torch.random.get_rng_state())  # the caller's RNG is not consumed
    again = train_probe(embeds, labels, config, epochs=3, batch_size=16, seed=3)
    other = train_probe(embeds, labels, config, epochs=3, batch_size=16, seed=4)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))
    assert not torch.equal(first.fc.weight, other.fc.weight)


def test_probe_structure_and_round_trip(tmp_path):
    one = EmotionProbe(EmotionProbeConfig(embed_dim=16, layers=1))
    assert set(one.state_dict()) == {"fc.weight", "fc.bias"}  # EmoGen's Emo-A head keys
    assert sum(isinstance(m, torch.nn.Linear) for m in one.modules()) == 1
    two = EmotionProbe(EmotionProbeConfig(embed_dim=16, hidden=24, layers=2))
    linears = [m for m in two.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(16, 24), (24, 8)]
    assert any(isinstance(m, torch.nn.ReLU) for m in two.modules())
    x = F.normalize(torch.randn(5, 16), dim=-1)
    assert two(x).shape == (5, 8)
    torch.testing.assert_close(two(x), two(3 * x))  # inputs are normalised inside
    two.save_pretrained(tmp_path)
    loaded = EmotionProbe.from_pretrained(tmp_path)
    assert loaded.config == two.config and torch.equal(loaded(x), two(x))
    with pytest.raises(ValueError, match="emotions="):
        EmotionProbeConfig(embed_dim=16, num_classes=2)
    with pytest.raises(ValueError, match="layers"):
        EmotionProbeConfig(embed_dim=16, layers=0)
    with pytest.raises(ValueError, match="another CLIP"):
        two(torch.randn(2, 15))


def test_clip_image_embeddings_tiny_clip_and_plain_tensor():
    from uniemo.clip import build_tiny_clip

    clip_model, _ = build_tiny_clip()
    pixel_values = torch.randn(3, 3, 32, 32)
    embeds = clip_image_embeddings(clip_model.eval(), pixel_values)
    assert embeds.shape == (3, clip_model.config.projection_dim) and not embeds.requires_grad
    torch.testing.assert_close(embeds.norm(dim=-1), torch.ones(3))

    class OldStyle(torch.nn.Module):  # transformers < 5 returned the projected tensor itself
        def get_image_features(self, pixel_values):
            return torch.full((pixel_values.shape[0], 4), 2.0)

    torch.testing.assert_close(clip_image_embeddings(OldStyle(), pixel_values), torch.full((3, 4), 0.5))
    torch.testing.assert_close(clip_image_embeddings(OldStyle(), pixel_values, normalize=False),
                               torch.full((3, 4), 2.0))


# ----------------------------------------------------------------------------------------------------------
# train/probe.py


def test_probe_script_end_to_end(tmp_path, learnable_emoset):
    from train.probe import main

    out = tmp_path / "run"
    metrics = main(["--preset", "tiny", f"data.root={learnable_emoset}", f"out_dir={out}"])
    for name in ("config.yaml", "metrics.json", "correlation.json", "correlation.safetensors",
                 "probe/config.json", "probe/model.safetensors"):
        assert (out / name).is_file(), name
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert metrics["num_train"] == 192 and metrics["num_val"] == 64
    assert metrics["train_accuracy"] > 0.5  # colour-coded classes are separable even for a random CLIP

    table = CorrelationTable.load(out)
    assert table.scene_names == ["forest", "room", "sea", "sky"]
    assert table.object_names == ["balloon", "cake", "flower", "knife", "skull", "spider"]
    assert sum(table.object_counts) == 192  # every fixture image carries exactly one object
    assert 0 < sum(table.scene_counts) < 192  # about 20 % of the images lack a scene and count for none
    torch.testing.assert_close(table.scene_alpha.sum(-1), torch.ones(4))
    assert table.scene_text_embeds.shape == (4, 32) and table.emotions[0] == "amusement"
    # The fixture draws scene = scenes[label % 4] and object = objects[label % 6]: with a probe that fits,
    # each attribute's α puts its mass on the emotions whose images carry it.
    scene_rule = {"sky": 0, "sea": 1, "forest": 2, "room": 3}
    object_rule = {"balloon": 0, "skull": 1, "cake": 2, "spider": 3, "flower": 4, "knife": 5}
    for names, alpha, rule, period in ((table.scene_names, table.scene_alpha, scene_rule, 4),
                                       (table.object_names, table.object_alpha, object_rule, 6)):
        for name, row in zip(names, alpha):
            carriers = [e for e in range(8) if e % period == rule[name]]
            assert row[carriers].sum() > 0.8, (name, row)

    probe = EmotionProbe.from_pretrained(out / "probe")
    assert probe.config.layers == 2 and probe.config.embed_dim == 32
    # matching a text embedding of the base gives back its own row
    scene_idx, object_idx, _, _ = table.match(table.scene_text_embeds, table.object_text_embeds[:4])
    assert scene_idx.tolist() == [0, 1, 2, 3] and object_idx.tolist() == [0, 1, 2, 3]


def test_probe_script_emo_a_scorer_without_attributes(tmp_path, learnable_emoset, caplog):
    from train.probe import main

    data = tmp_path / "no_attributes"
    shutil.copytree(learnable_emoset, data, ignore=shutil.ignore_patterns("annotation"))
    out = tmp_path / "run"
    with caplog.at_level("WARNING"):
        metrics = main(["--preset", "tiny", f"data.root={data}", f"out_dir={out}", "probe_layers=1",
                        "data.val_split=null", "epochs=5"])
    assert "no correlation table written" in caplog.text
    assert metrics["correlation_table"] is None and metrics["val_accuracy"] is None
    assert not (out / "correlation.json").exists()
    probe = EmotionProbe.from_pretrained(out / "probe")
    assert probe.config.layers == 1 and set(probe.state_dict()) == {"fc.weight", "fc.bias"}


def test_probe_script_help_is_offline_and_fast():
    result = subprocess.run([sys.executable, str(ROOT / "train" / "probe.py"), "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "probe_layers" in result.stdout and "tiny" in result.stdout


def test_tiny_probe_clip_shares_stage1_text_space():
    """model.clip=null builds the same random tiny CLIP as stage 1, so the tiny α table's
    text embeddings live where the tiny classifier's W_S / W_O point."""
    from uniemo.training.probe_config import ProbeModelConfig as ModelConfig
    from uniemo.training.probe_table import build_clip
    from uniemo.training.stage1_config import UnderstandingModelConfig
    from uniemo.training.stage1 import build_classifier
    from uniemo.clip import AttributeTextEncoder

    clip_model, tokenizer = build_clip(ModelConfig(clip=None, preset="tiny"))
    _, stage1_clip, stage1_tokenizer = build_classifier(UnderstandingModelConfig(clip=None, preset="tiny"),
                                                        EMOTIONS)
    names = ["sky", "balloon"]
    torch.testing.assert_close(AttributeTextEncoder(clip_model, tokenizer).embed(names),
                               AttributeTextEncoder(stage1_clip, stage1_tokenizer).embed(names), rtol=0, atol=0)
