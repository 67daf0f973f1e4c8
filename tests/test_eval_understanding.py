"""eval/understanding.py on tiny saved classifiers: its numbers equal a direct computation, and models whose
outputs are forced to one class give hand-countable accuracies under every protocol."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from eval.understanding import DATASETS, main
from uniemo.classifier import EmoClassifier, EmoClassifierConfig
from uniemo.constants import EMOTIONROI_EMOTIONS, EMOTIONS, POSITIVE_EMOTIONS, SENTIMENTS
from uniemo.data import DATASET_NAMES, TwitterDataset, UnreadableImageError, build_dataset, build_transform
from uniemo.metrics import align_logits, classification_report, collapse_to_binary

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--device", "cpu", "--batch-size", "16"]


# ---- fixtures -----------------------------------------------------------------------------------------------


def save_model(folder: Path, emotions=EMOTIONS, constant: str | None = None, trained_on: str = "emoset"):
    """A tiny classifier written as a stage-1 ``final/`` folder. With ``constant`` the head ignores the image and
    always ranks that class first, so accuracies can be counted by hand."""
    torch.manual_seed(0)
    model = EmoClassifier(EmoClassifierConfig.tiny(emotions=tuple(emotions))).eval()
    if constant is not None:
        last = model.head[-1]
        with torch.no_grad():
            last.weight.zero_()
            last.bias.fill_(-5.0)
            last.bias[list(emotions).index(constant)] = 5.0
    # The stage-1 final/ layout (train/understanding.py): classifier/, attributes.json, uniemo.json.
    folder = Path(folder)
    model.save_pretrained(folder / "classifier")
    (folder / "attributes.json").write_text(json.dumps({"scenes": [], "objects": []}))
    (folder / "uniemo.json").write_text(json.dumps({
        "format_version": 1, "stage": "understanding", "emotions": list(emotions), "components": ["classifier"],
        "dataset": trained_on,
    }))
    return model


def direct_logits(model, name, root, split="test", **kwargs):
    """The model's logits over a split, computed here without the script (one batch, same transform)."""
    cfg = model.config
    transform = build_transform(cfg.image_size, False, cfg.image_mean, cfg.image_std)
    dataset = build_dataset(name, root, split, transform, **kwargs)
    with torch.no_grad():
        logits = model.eval()(torch.stack([dataset[i]["pixel_values"] for i in range(len(dataset))])).logits
    return logits, torch.tensor([entry.label for entry in dataset.entries]), dataset.labels


def write_image(path: Path, seed: int, size: int = 16) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="JPEG", quality=90)


def write_twitter(root: Path, positives: int = 12, negatives: int = 8) -> Path:
    """Twitter I layout: images/ + ground_truth/twitter_five_agrees.txt ("<file> <1|0>")."""
    lines = []
    for i in range(positives + negatives):
        write_image(root / "images" / f"{i}.jpg", seed=i)
        lines.append(f"{i}.jpg {1 if i < positives else 0}")
    (root / "ground_truth").mkdir(parents=True, exist_ok=True)
    (root / "ground_truth" / "twitter_five_agrees.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def twitter_root(tmp_path_factory):
    return write_twitter(tmp_path_factory.mktemp("twitter1"))


@pytest.fixture(scope="module")
def fi_root(tmp_path_factory):
    """FI as distributed: capitalised folders, listed alphabetically (not in EMOTIONS order)."""
    root = tmp_path_factory.mktemp("fi")
    for k, emotion in enumerate(sorted(EMOTIONS)):
        for i in range(10):  # 10 per class -> 2 per class in the 15 % test split
            write_image(root / emotion.capitalize() / f"{emotion}_{i}.jpg", seed=100 * k + i)
    return root


def fold_test_labels(root, fold) -> list[int]:
    return [entry.label for entry in TwitterDataset(root, fold, "test").entries]


# ---- same label space, model folder layouts, outputs ----------------------------------------------------------


def test_stage1_final_folder_numbers_equal_a_direct_report(tmp_path, learnable_emoset):
    final = tmp_path / "run" / "final"
    model = save_model(final)
    result = main(["--model", str(final), "--dataset", "emoset", "--data-root", str(learnable_emoset), *FAST])

    saved = json.loads((final / "eval_emoset_test.json").read_text())
    assert saved == json.loads(json.dumps(result))
    logits, labels, _ = direct_logits(model, "emoset", learnable_emoset)
    expected = classification_report(logits, labels, EMOTIONS)
    metrics = saved["metrics"]
    assert metrics["confusion_matrix"] == expected["confusion_matrix"]
    assert metrics["per_class_accuracy"] == pytest.approx(expected["per_class_accuracy"])
    for key in ("top1", "top5", "mean_class_accuracy"):
        assert metrics[key] == pytest.approx(expected[key]), key
    assert saved["top1"] == metrics["top1"] and saved["labels"] == list(EMOTIONS)
    # the settings that identify the run
    assert saved["protocol"] == "same-label-space"
    assert (saved["dataset"], saved["split"], saved["fold"]) == ("emoset", "test", None)
    assert saved["model"] == str(final.resolve()) and saved["data_root"] == str(learnable_emoset.resolve())
    assert (saved["num_images"], saved["num_listed"], saved["skipped_images"]) == (64, 64, 0)
    assert saved["versions"]["torch"] == torch.__version__ and saved["timestamp"]
    assert saved["models"][0]["trained_on"] == "emoset" and len(saved["models"][0]["weights_sha256"]) == 64
    assert saved["settings"]["device"] == "cpu" and saved["settings"]["batch_size"] == 16
    png = final / "eval_emoset_test.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert saved["outputs"] == {"json": str((final / "eval_emoset_test.json").resolve()),
                                "plot": str(png.resolve())}


def test_run_folder_and_classifier_folder_are_accepted(tmp_path, learnable_emoset):
    save_model(tmp_path / "run" / "final")
    common = ["--dataset", "emoset", "--data-root", str(learnable_emoset), "--split", "val", *FAST]
    # the stage-1 run folder (holding final/), with explicit output paths
    out, plot = tmp_path / "results" / "a.json", tmp_path / "plots" / "a.png"
    from_run = main(["--model", str(tmp_path / "run"), "--out", str(out), "--plot", str(plot), *common])
    assert out.is_file() and plot.stat().st_size > 0
    # the classifier folder itself: its parent's uniemo.json is still read
    from_classifier = main(["--model", str(tmp_path / "run" / "final" / "classifier"), "--no-plot", *common])
    assert from_classifier["metrics"]["confusion_matrix"] == from_run["metrics"]["confusion_matrix"]
    assert from_classifier["models"][0]["trained_on"] == "emoset"
    assert not (tmp_path / "run" / "final" / "classifier" / "eval_emoset_val.png").exists()


def test_forced_prediction_gives_hand_counted_accuracy(tmp_path, learnable_emoset):
    save_model(tmp_path / "m", constant="fear")
    result = main(["--model", str(tmp_path / "m"), "--dataset", "emoset", "--data-root", str(learnable_emoset),
                   "--no-plot", *FAST])
    # 8 test images per class, all predicted "fear"
    assert result["top1"] == pytest.approx(1 / 8)
    assert result["metrics"]["per_class_accuracy"] == {e: (1.0 if e == "fear" else 0.0) for e in EMOTIONS}
    assert result["metrics"]["confusion_matrix"] == [[8 if j == 6 else 0 for j in range(8)] for _ in range(8)]


# ---- zero-shot FI --------------------------------------------------------------------------------------------


def test_zero_shot_fi_matches_labels_by_name(tmp_path, fi_root):
    # A model whose label order is alphabetical: awe is its index 2 but EMOTIONS index 1.
    alphabetical = sorted(EMOTIONS)
    save_model(tmp_path / "forced", emotions=alphabetical, constant="awe")
    result = main(["--model", str(tmp_path / "forced"), "--dataset", "fi", "--data-root", str(fi_root), *FAST])
    assert result["protocol"] == "zero-shot" and result["labels"] == list(EMOTIONS)
    assert result["num_images"] == 16 and result["top1"] == pytest.approx(2 / 16)
    assert [row[EMOTIONS.index("awe")] for row in result["metrics"]["confusion_matrix"]] == [2] * 8

    model = save_model(tmp_path / "random", emotions=alphabetical)
    result = main(["--model", str(tmp_path / "random"), "--dataset", "fi", "--data-root", str(fi_root), *FAST])
    logits, labels, dataset_labels = direct_logits(model, "fi", fi_root)
    expected = classification_report(align_logits(logits, alphabetical, dataset_labels), labels, EMOTIONS)
    assert result["metrics"]["confusion_matrix"] == expected["confusion_matrix"]
    assert result["top1"] == pytest.approx(expected["top1"])


def test_fi_model_on_fi_is_not_zero_shot(tmp_path, fi_root):
    save_model(tmp_path / "m", trained_on="fi")
    result = main(["--model", str(tmp_path / "m"), "--dataset", "fi", "--data-root", str(fi_root), "--no-plot",
                   *FAST])
    assert result["protocol"] == "same-label-space"


# ---- Twitter: 2-class collapse, binary models, folds ---------------------------------------------------------


def test_eight_class_model_collapses_to_binary_on_twitter(tmp_path, twitter_root):
    model = save_model(tmp_path / "m")
    result = main(["--model", str(tmp_path / "m"), "--dataset", "twitter1", "--data-root", str(twitter_root),
                   *FAST])
    assert result["protocol"] == "binary-collapse" and result["labels"] == ["negative", "positive"]
    assert (tmp_path / "m" / "eval_twitter1_test_fold0.json").is_file()
    assert (tmp_path / "m" / "eval_twitter1_test_fold0.png").stat().st_size > 0
    logits, labels, _ = direct_logits(model, "twitter1", twitter_root, fold=0)
    binary, _ = collapse_to_binary(logits.softmax(dim=1), torch.zeros_like(labels), EMOTIONS, POSITIVE_EMOTIONS)
    expected = classification_report(binary, labels, SENTIMENTS)
    cm = result["metrics"]["confusion_matrix"]
    assert cm == expected["confusion_matrix"] and len(cm) == 2 and sum(map(sum, cm)) == 4
    assert result["top1"] == pytest.approx(expected["top1"]) and result["metrics"]["top5"] is None

    # awe always wins, so every image is called positive: accuracy = the positives' share of fold 2
    save_model(tmp_path / "awe", constant="awe")
    result = main(["--model", str(tmp_path / "awe"), "--dataset", "twitter1", "--data-root", str(twitter_root),
                   "--fold", "2", "--no-plot", *FAST])
    fold_labels = fold_test_labels(twitter_root, 2)
    assert result["fold"] == 2 and result["top1"] == pytest.approx(sum(fold_labels) / len(fold_labels))


def test_binary_model_on_twitter_is_same_label_space(tmp_path, twitter_root):
    model = save_model(tmp_path / "m", emotions=SENTIMENTS, trained_on="twitter1")
    result = main(["--model", str(tmp_path / "m"), "--dataset", "twitter1", "--data-root", str(twitter_root),
                   "--fold", "1", "--no-plot", *FAST])
    logits, labels, _ = direct_logits(model, "twitter1", twitter_root, fold=1)
    assert result["protocol"] == "same-label-space"
    expected = classification_report(logits, labels, SENTIMENTS)
    assert result["metrics"]["confusion_matrix"] == expected["confusion_matrix"]


def test_binary_model_on_emotions_collapses_the_labels(tmp_path, learnable_emoset):
    save_model(tmp_path / "m", emotions=SENTIMENTS, constant="positive", trained_on="twitter1")
    result = main(["--model", str(tmp_path / "m"), "--dataset", "emoset", "--data-root", str(learnable_emoset),
                   "--no-plot", *FAST])
    assert result["protocol"] == "binary-collapse"
    assert result["metrics"]["confusion_matrix"] == [[0, 32], [0, 32]] and result["top1"] == pytest.approx(0.5)


def test_all_folds_with_one_model_per_fold(tmp_path, twitter_root):
    # fold k's model always answers positive for even k, negative for odd k
    for k in range(5):
        save_model(tmp_path / "cv" / f"fold{k}", emotions=SENTIMENTS, constant=SENTIMENTS[(k + 1) % 2],
                   trained_on="twitter1")
    result = main(["--model", str(tmp_path / "cv"), "--dataset", "twitter1", "--data-root", str(twitter_root),
                   "--all-folds", *FAST])
    assert (tmp_path / "cv" / "eval_twitter1_test_folds.json").is_file()
    assert (tmp_path / "cv" / "eval_twitter1_test_folds.png").stat().st_size > 0
    folds = result["folds"]
    assert [fold["fold"] for fold in folds] == list(range(5)) and len(result["models"]) == 5
    for k, fold in enumerate(folds):
        labels = fold_test_labels(twitter_root, k)
        share = sum(labels) / len(labels)
        assert fold["model"] == str((tmp_path / "cv" / f"fold{k}").resolve())
        assert fold["top1"] == pytest.approx(share if k % 2 == 0 else 1 - share)
    per_fold = [fold["top1"] for fold in folds]
    assert result["top1"] == pytest.approx(sum(per_fold) / 5) == result["fold_summary"]["mean"]
    # the pooled matrix covers every image once and is the sum of the per-fold ones
    pooled = np.sum([fold["metrics"]["confusion_matrix"] for fold in folds], axis=0).tolist()
    assert result["metrics"]["confusion_matrix"] == pooled and result["num_images"] == 20


def test_all_folds_with_one_zero_shot_model(tmp_path, twitter_root):
    save_model(tmp_path / "m")
    result = main(["--model", str(tmp_path / "m"), "--dataset", "twitter1", "--data-root", str(twitter_root),
                   "--all-folds", "--no-plot", *FAST])
    assert result["protocol"] == "binary-collapse" and len(result["folds"]) == 5 and len(result["models"]) == 1
    assert sum(fold["num_images"] for fold in result["folds"]) == 20
    assert result["top1"] == pytest.approx(np.mean([fold["top1"] for fold in result["folds"]]))


# ---- errors, unreadable images, custom folders, the CLI ------------------------------------------------------


def test_unmappable_label_space_names_the_protocols(tmp_path):
    root = tmp_path / "roi"
    for k, emotion in enumerate(EMOTIONROI_EMOTIONS):
        write_image(root / "images" / emotion / "0.jpg", seed=k)
    (root / "training_testing_split").mkdir()
    (root / "training_testing_split" / "testing.txt").write_text(
        "\n".join(f"{emotion}/0.jpg" for emotion in EMOTIONROI_EMOTIONS) + "\n")
    save_model(tmp_path / "m")
    with pytest.raises(ValueError, match="emotionroi") as error:
        main(["--model", str(tmp_path / "m"), "--dataset", "emotionroi", "--data-root", str(root), *FAST])
    assert "binary-collapse" in str(error.value) and "same-label-space" in str(error.value)
    assert not list((tmp_path / "m").glob("eval_*"))


def test_bad_models_and_flags_are_clear_errors(tmp_path, twitter_root):
    common = ["--dataset", "twitter1", "--data-root", str(twitter_root), *FAST]
    with pytest.raises(FileNotFoundError, match="nowhere"):
        main(["--model", str(tmp_path / "nowhere"), *common])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        main(["--model", str(tmp_path / "empty"), *common])
    with pytest.raises(ValueError, match="--fold"):
        main(["--model", str(tmp_path), "--dataset", "emoset", "--data-root", str(tmp_path), "--fold", "1"])
    with pytest.raises(ValueError, match="not both"):
        main(["--model", str(tmp_path), *common, "--fold", "1", "--all-folds"])
    for k in (0, 1, 2, 4):
        save_model(tmp_path / "cv" / f"fold{k}", emotions=SENTIMENTS)
    with pytest.raises(FileNotFoundError, match="fold3"):
        main(["--model", str(tmp_path / "cv"), *common, "--all-folds"])
    # a per-fold folder evaluated on one fold uses that fold's model
    assert main(["--model", str(tmp_path / "cv"), *common, "--fold", "4", "--no-plot"])["fold"] == 4


def test_unreadable_images_fail_or_are_skipped_and_listed(tmp_path):
    root = write_twitter(tmp_path / "twitter1")
    broken = TwitterDataset(root, 0, "test").entries[0].path
    data = Path(broken).read_bytes()
    Path(broken).write_bytes(data[: len(data) // 3])
    save_model(tmp_path / "m")
    common = ["--model", str(tmp_path / "m"), "--dataset", "twitter1", "--data-root", str(root), "--no-plot",
              *FAST]
    with pytest.raises(UnreadableImageError, match=str(broken)):
        main(common)
    result = main([*common, "--skip-unreadable"])
    assert result["skipped_images"] == 1 and result["skipped_paths"] == [broken]
    assert (result["num_listed"], result["num_images"]) == (4, 3)


def test_custom_folder_in_the_models_label_space(tmp_path):
    root = tmp_path / "mine"
    rows = []
    for i, emotion in enumerate(["awe", "awe", "fear", "sadness"]):
        write_image(root / f"{i}.jpg", seed=i)
        rows.append(json.dumps({"file_name": f"{i}.jpg", "emotion": emotion, "split": "test"}))
    (root / "metadata.jsonl").write_text("\n".join(rows) + "\n")
    save_model(tmp_path / "m", constant="awe")
    result = main(["--model", str(tmp_path / "m"), "--dataset", "folder", "--data-root", str(root), "--no-plot",
                   *FAST])
    assert result["protocol"] == "zero-shot" and result["top1"] == pytest.approx(0.5)


def test_help_runs_offline_without_loading_torch(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    script = ROOT / "eval" / "understanding.py"
    done = subprocess.run([sys.executable, str(script), "--help"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--all-folds" in done.stdout and "binary-collapse" in done.stdout
    probe = "import sys, eval.understanding; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.strip() == "False", done.stderr
    assert DATASETS == DATASET_NAMES
