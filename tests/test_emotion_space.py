"""The emotion space: per-emotion Gaussians of the three embeddings, one per emotion (the paper's) or a mixture."""

import pytest
import torch
from safetensors import safe_open

from uniemo.emotion_space import FILENAME, KINDS, EmotionSpace, kmeans

EMOTIONS = ("amusement", "sadness")


def _two_cells(n: int = 200, gap: float = 6.0, seed: int = 0):
    """Each emotion's images in two groups: amusement at (+s, +o) and (-s, -o), sadness at (+s, -o) and (-s, +o):
    the same average scene and the same average object, as in EmoShapes, told apart only by the combination."""
    g = torch.Generator().manual_seed(seed)
    rows, labels = {k: [] for k in KINDS}, []
    for e, signs in enumerate((((1, 1), (-1, -1)), ((1, -1), (-1, 1)))):
        for i in range(n):
            s, o = signs[i % 2]
            rows["scene"].append(torch.randn(4, generator=g) + s * gap)
            rows["object"].append(torch.randn(4, generator=g) + o * gap)
            rows["cls"].append(torch.randn(4, generator=g) + e)
            labels.append(e)
    return {k: torch.stack(v) for k, v in rows.items()}, torch.tensor(labels)


def _combinations(space: EmotionSpace, emotion: str, n: int = 400) -> float:
    """The share of samples whose (scene sign, object sign) is a combination of the emotion's own groups."""
    x = space.sample(emotion, n, torch.Generator().manual_seed(1))
    same_sign = (x["scene"].mean(1).sign() == x["object"].mean(1).sign()).float().mean().item()
    return same_sign if emotion == "amusement" else 1 - same_sign


def test_one_gaussian_is_the_per_emotion_mean_and_std():
    features, labels = _two_cells()
    space = EmotionSpace.fit(features, labels, EMOTIONS)
    for kind in KINDS:
        x = features[kind][labels == 0]
        torch.testing.assert_close(space.means[kind][0], x.mean(0))
        torch.testing.assert_close(space.stds[kind][0], x.std(0, unbiased=False))
    assert space.num_components == 1 and space.components is None
    # one Gaussian samples between the groups: half the samples combine one cell's scene with the other's object
    assert 0.35 < _combinations(space, "amusement") < 0.65


def test_two_components_keep_the_combinations_of_the_cells():
    features, labels = _two_cells()
    space = EmotionSpace.fit(features, labels, EMOTIONS, components=2)
    assert space.num_components == 2
    torch.testing.assert_close(space.components["weights"], torch.full((2, 2), 0.5))
    centres = sorted(space.components["means"]["scene"][0].mean(1).tolist())
    assert centres[0] == pytest.approx(-6.0, abs=0.3) and centres[1] == pytest.approx(6.0, abs=0.3)
    # the per-emotion moments stay what one Gaussian would store
    torch.testing.assert_close(space.means["scene"], EmotionSpace.fit(features, labels, EMOTIONS).means["scene"])
    assert _combinations(space, "amusement") > 0.99 and _combinations(space, "sadness") > 0.99


def test_save_load_round_trip_and_the_one_gaussian_file_is_unchanged(tmp_path):
    features, labels = _two_cells(n=40)
    mixture = EmotionSpace.fit(features, labels, EMOTIONS, components=2)
    (tmp_path / "k2").mkdir()
    (tmp_path / "k1").mkdir()
    mixture.save(tmp_path / "k2")
    again = EmotionSpace.load(tmp_path / "k2")
    assert again.allclose(mixture, atol=0) and again.num_components == 2
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    a, b = mixture.sample("sadness", 5, g()), again.sample("sadness", 5, g())
    assert all(torch.equal(a[k], b[k]) for k in KINDS)
    single = EmotionSpace.fit(features, labels, EMOTIONS)
    single.save(tmp_path / "k1")
    with safe_open(str(tmp_path / "k1" / FILENAME), framework="pt") as f:
        assert sorted(f.keys()) == sorted([f"{k}_{s}" for k in KINDS for s in ("mean", "std")] + ["counts"])
    assert EmotionSpace.load(tmp_path / "k1").components is None
    assert not single.allclose(mixture)


def test_kmeans_is_deterministic_and_handles_small_sets():
    x = torch.cat([torch.zeros(5, 2), torch.ones(5, 2) * 10])
    labels = kmeans(x, 2)
    assert labels[:5].unique().numel() == 1 and labels[5:].unique().numel() == 1 and labels[0] != labels[5]
    assert torch.equal(kmeans(x, 2), labels)
    assert kmeans(torch.zeros(1, 3), 2).tolist() == [0]
    with pytest.raises(ValueError, match="components"):
        EmotionSpace.fit(*_two_cells(n=4), EMOTIONS, components=0)


def test_sampling_one_component_draws_only_from_it():
    features, labels = _two_cells()
    space = EmotionSpace.fit(features, labels, EMOTIONS, components=2)
    for j in range(2):
        x = space.sample("amusement", 50, torch.Generator().manual_seed(0), scale=0.0, component=j)
        torch.testing.assert_close(x["scene"], space.components["means"]["scene"][0][j].expand(50, -1))
    with pytest.raises(ValueError, match="component"):
        space.sample("amusement", 1, component=2)
    single = EmotionSpace.fit(features, labels, EMOTIONS)
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    assert torch.equal(single.sample("sadness", 3, g(), component=0)["cls"], single.sample("sadness", 3, g())["cls"])
    with pytest.raises(ValueError, match="one Gaussian"):
        single.sample("sadness", 1, component=1)


def test_kmeans_splits_the_groups_not_the_outliers():
    """Two groups of 100 rows and 5 mislabelled rows far from both (EmoShapes' 5 % label noise): the split must
    follow the groups. Farthest-point seeding alone starts a centre on an outlier and ends with a cluster of
    the 5 outliers and one spanning both groups; the least-inertia start over k-means++ restarts does not."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(100, 6, generator=g) + torch.tensor([5.0, 0, 0, 0, 0, 0])
    b = torch.randn(100, 6, generator=g) - torch.tensor([5.0, 0, 0, 0, 0, 0])
    outliers = torch.randn(5, 6, generator=g) * 0.3 + torch.tensor([0.0, 20.0, 0, 0, 0, 0])
    x = torch.cat([a, b, outliers])
    labels = kmeans(x, 2)
    assert labels[:100].unique().numel() == 1 and labels[100:200].unique().numel() == 1
    assert labels[0] != labels[100]
    single_start = kmeans(x, 2, restarts=0)  # farthest-point seeding only: the failure this guards against
    assert single_start[200:].unique().numel() == 1 and (single_start[:200] != single_start[200]).all()
    assert torch.equal(kmeans(x, 2), labels)  # deterministic (seeded restarts)


def test_refitting_a_model_folder_with_two_components(tiny_model_dir, learnable_emoset, tmp_path):
    """train/emotion_space.py: a copy of the model folder with a two-part space, which the pipeline samples."""
    from train.emotion_space import main
    from uniemo import UniEmoPipeline

    out = tmp_path / "k2"
    summary = main(["--model", str(tiny_model_dir), "--dataset", "emoset", "--data-root", str(learnable_emoset),
                    "--components", "2", "--out", str(out)])
    assert summary["components"] == 2
    refit = EmotionSpace.load(out)
    assert refit.num_components == 2 and torch.allclose(refit.components["weights"].sum(1), torch.ones(8))
    # the per-emotion moments are those stage 2 wrote (same classifier, same split, same transform)
    original = EmotionSpace.load(tiny_model_dir)
    assert all(torch.allclose(refit.means[k], original.means[k], atol=1e-5) for k in KINDS)
    assert EmotionSpace.load(tiny_model_dir).num_components == 1  # the source folder is left alone
    pipe = UniEmoPipeline.from_pretrained(out)
    assert pipe.emotion_space.num_components == 2 and len(pipe.generate("awe", num_images=2, seed=0)) == 2
    with pytest.raises(FileExistsError):
        main(["--model", str(tiny_model_dir), "--dataset", "emoset", "--data-root", str(learnable_emoset),
              "--out", str(out)])


def test_other_kinds_fit_sample_and_round_trip(tmp_path):
    """EmoSym's two features ("emo", "ctx"): per-emotion moments, samples of both kinds only, and a file that
    says its kinds (a UniEmo file does not, and loads as the three kinds)."""
    torch.manual_seed(0)
    labels = torch.tensor([0, 0, 1, 1, 1])
    features = {"emo": torch.randn(5, 4), "ctx": torch.randn(5, 6)}
    space = EmotionSpace.fit(features, labels, ("a", "b"), kinds=("emo", "ctx"))
    assert space.kinds == ("emo", "ctx")
    torch.testing.assert_close(space.means["ctx"][1], features["ctx"][2:].mean(0))
    torch.testing.assert_close(space.stds["emo"][0], features["emo"][:2].std(0, unbiased=False))
    drawn = space.sample("b", 3, torch.Generator().manual_seed(1))
    assert set(drawn) == {"emo", "ctx"} and drawn["ctx"].shape == (3, 6)
    space.save(tmp_path)
    loaded = EmotionSpace.load(tmp_path)
    assert loaded.kinds == ("emo", "ctx") and loaded.allclose(space)
    with pytest.raises(ValueError, match="lacks"):
        EmotionSpace(("a", "b"), space.means, space.stds, space.counts)  # the three kinds expected by default
