"""Dataset loaders on tiny fixtures written in each source's real on-disk format (docs/method.md section 2).

Every fixture is built in ``tmp_path`` from small random JPEGs; nothing is downloaded.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile
from torch.utils.data import DataLoader

from uniemo.constants import EMOTIONROI_EMOTIONS, EMOTIONS, SENTIMENTS
from uniemo.data import (
    DATASET_NAMES,
    EmoSetDataset,
    EmotionDataset,
    EmotionROIDataset,
    FIDataset,
    ImageEntry,
    ImageFolderDataset,
    TwitterDataset,
    UnreadableImageError,
    build_dataset,
    collate_records,
)
from uniemo.data.transforms import build_transform


def write_jpeg(path: Path, seed: int = 0, size: int = 24) -> Path:
    """A small random RGB JPEG at ``path`` (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="JPEG", quality=90)
    return path


def write_truncated_jpeg(path: Path) -> Path:
    """A real JPEG cut in half: PIL opens it (the header is intact) but fails when decoding."""
    write_jpeg(path, seed=99, size=64)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


# ---- EmoSet -----------------------------------------------------------------------------------------------

# (emotion, number, annotation or None for "no annotation file")
EMOSET_ITEMS = [
    ("awe", 0, {"scene": "mountain", "object": ["Tree", "Person"], "brightness": 0.4, "colorfulness": 0.6}),
    ("awe", 1, {"object": ["Tree"]}),  # no scene
    ("sadness", 0, {"scene": "cemetery", "object": []}),  # empty object list
    ("amusement", 0, {"scene": "amusement_park"}),  # no object key
    ("fear", 0, None),  # no annotation file at all
    ("excitement", 0, {"scene": "stadium", "object": ["Person"], "facial_expression": "happy"}),
]


def make_emoset(root: Path, items=EMOSET_ITEMS, four_field_split: str = "val") -> Path:
    """EmoSet layout: info.json, images, annotations, split files (4-field for ``four_field_split``, else 3)."""
    # info.json as in the official release: label2idx / idx2label per key.
    info = {
        "emotion": {
            "label2idx": {e: i for i, e in enumerate(EMOTIONS)},
            "idx2label": {str(i): e for i, e in enumerate(EMOTIONS)},
        }
    }
    (root / "info.json").parent.mkdir(parents=True, exist_ok=True)
    (root / "info.json").write_text(json.dumps(info))
    three, four = [], []
    for k, (emotion, number, annotation) in enumerate(items):
        stem = f"{emotion}_{number:05d}"
        image_rel, annotation_rel = f"image/{emotion}/{stem}.jpg", f"annotation/{emotion}/{stem}.json"
        write_jpeg(root / image_rel, seed=k)
        if annotation is not None:
            (root / annotation_rel).parent.mkdir(parents=True, exist_ok=True)
            (root / annotation_rel).write_text(json.dumps(annotation))
        three.append([emotion, image_rel, annotation_rel])
        four.append([emotion, stem, image_rel, annotation_rel])
    for split in ("train", "val", "test"):
        rows = four if split == four_field_split else three
        (root / f"{split}.json").write_text(json.dumps(rows))
    return root


def entry_view(dataset: EmotionDataset) -> list[tuple]:
    return [(e.path, e.label, e.scene, e.objects, e.extra) for e in dataset.entries]


def test_emoset_both_split_forms_read_the_same_records(tmp_path):
    root = make_emoset(tmp_path / "emoset")
    three_field = EmoSetDataset(root, "train")
    four_field = EmoSetDataset(root, "val")
    assert len(three_field) == len(EMOSET_ITEMS)
    assert entry_view(three_field) == entry_view(four_field)
    assert three_field[0]["path"] == four_field[0]["path"] == str(root / "image/awe/awe_00000.jpg")


def test_emoset_labels_by_name_and_optional_attributes(tmp_path):
    dataset = EmoSetDataset(make_emoset(tmp_path / "emoset"), "train")
    assert dataset.labels == EMOTIONS
    assert [e.label for e in dataset.entries] == [EMOTIONS.index(item[0]) for item in EMOSET_ITEMS]
    full, no_scene, empty_objects, no_object_key, no_file, with_face = dataset.entries
    assert (full.scene, full.objects) == ("mountain", ["Tree", "Person"])
    assert full.extra == {"brightness": 0.4, "colorfulness": 0.6}
    assert no_scene.scene is None and no_scene.objects == ["Tree"]
    assert empty_objects.scene == "cemetery" and empty_objects.objects == []
    assert no_object_key.scene == "amusement_park" and no_object_key.objects == []
    assert no_file.scene is None and no_file.objects == [] and no_file.extra == {}
    assert with_face.extra == {"facial_expression": "happy"}

    record = dataset[1]
    assert record["scene"] is None and record["objects"] == ["Tree"] and record["labels"] == EMOTIONS.index("awe")
    assert record["index"] == 1 and isinstance(record["pixel_values"], Image.Image)
    assert record["pixel_values"].mode == "RGB"

    assert dataset.attribute_vocab() == (["amusement_park", "cemetery", "mountain", "stadium"], ["Person", "Tree"])
    counts = dataset.label_counts()
    assert len(counts) == 8 and counts[EMOTIONS.index("awe")] == 2 and counts[EMOTIONS.index("anger")] == 0


def test_emoset_two_class_collapse(tmp_path):
    dataset = EmoSetDataset(make_emoset(tmp_path / "emoset"), "train", num_classes=2)
    assert dataset.labels == SENTIMENTS == ("negative", "positive")
    # awe, awe, sadness, amusement, fear, excitement
    assert [e.label for e in dataset.entries] == [1, 1, 0, 1, 0, 1]
    assert dataset.label_counts() == [2, 4]
    with pytest.raises(ValueError, match="num_classes"):
        EmoSetDataset(tmp_path / "emoset", "train", num_classes=6)


def test_emoset_errors_name_what_is_wrong(tmp_path):
    root = make_emoset(tmp_path / "emoset", items=[("awe", 0, {"scene": "x"})])
    (root / "test.json").write_text(json.dumps([["happiness", "image/awe/awe_00000.jpg", "annotation/a.json"]]))
    with pytest.raises(ValueError, match="happiness") as info:
        EmoSetDataset(root, "test")
    assert "amusement" in str(info.value) and "sadness" in str(info.value)
    with pytest.raises(FileNotFoundError, match="no_such_root"):
        EmoSetDataset(tmp_path / "no_such_root", "train")
    (root / "val.json").unlink()
    with pytest.raises(FileNotFoundError, match="val.json"):
        EmoSetDataset(root, "val")
    with pytest.raises(ValueError, match="train, val, test"):
        EmoSetDataset(root, "validation")
    # An unparsable annotation: an error naming it, or (in skip mode) missing attributes.
    (root / "annotation/awe/awe_00000.json").write_text("{not json")
    with pytest.raises(ValueError, match="awe_00000.json"):
        EmoSetDataset(root, "train")
    lenient = EmoSetDataset(root, "train", on_error="skip")
    assert lenient.entries[0].scene is None and lenient.entries[0].objects == []
    (root / "train.json").write_text(json.dumps([["awe", "only_one_path.jpg"]]))
    with pytest.raises(ValueError, match="image_path"):
        EmoSetDataset(root, "train")


# ---- Unreadable images ------------------------------------------------------------------------------------


def corrupt_dataset(tmp_path: Path, on_error: str, transform=None) -> EmotionDataset:
    good = write_jpeg(tmp_path / "good.jpg")
    truncated = write_truncated_jpeg(tmp_path / "truncated.jpg")
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("this is not an image")
    entries = [ImageEntry(str(good), 0), ImageEntry(str(truncated), 1), ImageEntry(str(not_image), 2)]
    return EmotionDataset(entries, EMOTIONS, transform=transform, on_error=on_error)


def test_unreadable_images_raise_with_their_path(tmp_path):
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # otherwise PIL pads truncated JPEGs silently
    dataset = corrupt_dataset(tmp_path, "raise")
    assert dataset[0]["labels"] == 0
    for index, name in [(1, "truncated.jpg"), (2, "notes.jpg")]:
        with pytest.raises(UnreadableImageError) as info:
            dataset[index]
        assert str(tmp_path / name) in str(info.value)
        assert isinstance(info.value, OSError)
    missing = EmotionDataset([ImageEntry(str(tmp_path / "gone.jpg"), 0)], EMOTIONS)
    with pytest.raises(UnreadableImageError, match="gone.jpg"):
        missing[0]
    with pytest.raises(ValueError, match="raise, skip"):
        EmotionDataset([], EMOTIONS, on_error="ignore")


def test_unreadable_images_skipped_and_counted(tmp_path, caplog):
    dataset = corrupt_dataset(tmp_path, "skip", transform=build_transform(16, train=False))
    with caplog.at_level(logging.WARNING, logger="uniemo.data.base"):
        records = [dataset[i] for i in range(len(dataset))]
    assert records[1] is None and records[2] is None
    assert dataset.skipped == [str(tmp_path / "truncated.jpg"), str(tmp_path / "notes.jpg")]
    assert str(tmp_path / "truncated.jpg") in caplog.text and str(tmp_path / "notes.jpg") in caplog.text
    dataset[1]  # a second epoch does not record the file twice
    assert len(dataset.skipped) == 2

    batch = collate_records(records)
    assert batch["num_skipped"] == 2
    assert batch["pixel_values"].shape == (1, 3, 16, 16)
    assert batch["labels"].tolist() == [0] and batch["index"].tolist() == [0]
    assert batch["path"] == [str(tmp_path / "good.jpg")]
    assert collate_records([None, None]) is None

    # Through a real DataLoader: the batch holding only corrupt images comes out as None.
    loader = DataLoader(dataset, batch_size=2, collate_fn=collate_records)
    batches = list(loader)
    assert batches[0]["num_skipped"] == 1 and batches[0]["labels"].tolist() == [0]
    assert batches[1] is None


def test_transform_output_shapes_and_modes(tmp_path):
    paths = [write_jpeg(tmp_path / "rgb.jpg", size=30)]
    grey = tmp_path / "grey.png"
    Image.new("L", (20, 28), 128).save(grey)
    rgba = tmp_path / "rgba.png"
    Image.new("RGBA", (28, 20), (255, 0, 0, 0)).save(rgba)
    paths += [grey, rgba]
    entries = [ImageEntry(str(p), i, scene="s" if i else None, objects=["o"] * i) for i, p in enumerate(paths)]
    dataset = EmotionDataset(entries, EMOTIONS, transform=build_transform(16, train=True))
    record = dataset[1]
    assert record["pixel_values"].shape == (3, 16, 16) and record["pixel_values"].dtype == torch.float32
    batch = collate_records([dataset[i] for i in range(3)])
    assert batch["pixel_values"].shape == (3, 3, 16, 16)
    assert batch["labels"].dtype == torch.long and batch["labels"].tolist() == [0, 1, 2]
    assert batch["scene"] == [None, "s", "s"] and batch["objects"] == [[], ["o"], ["o", "o"]]
    assert batch["num_skipped"] == 0
    # Transparent pixels are composited on white, not black.
    assert EmotionDataset([entries[2]], EMOTIONS)[0]["pixel_values"].getpixel((0, 0)) == (255, 255, 255)


# ---- FI ---------------------------------------------------------------------------------------------------

# Folder name (mixed case, as found in the wild) -> number of images.
FI_FOLDERS = {"Amusement": 40, "anger": 20, "Sadness": 30, "awe": 10}


def make_fi(root: Path) -> Path:
    for k, (folder, count) in enumerate(FI_FOLDERS.items()):
        for i in range(count):
            write_jpeg(root / folder / f"{folder.lower()}_{i:04d}.jpg", seed=100 * k + i, size=8)
    (root / "README.txt").write_text("not a folder")
    return root


def test_fi_split_is_seeded_written_and_reread(tmp_path):
    root = make_fi(tmp_path / "fi")
    train = FIDataset(root, "train", seed=3)
    split_file = root / "uniemo_split_seed3.json"
    assert train.split_file == str(split_file) and split_file.is_file()
    first = split_file.read_text()
    data = json.loads(first)
    assert data["seed"] == 3 and data["fractions"] == [0.8, 0.05, 0.15]

    # Same seed, elsewhere: byte-identical file. Different seed: a different split.
    same = FIDataset.write_split(root, seed=3, out_path=tmp_path / "again.json")
    assert Path(same).read_text() == first
    FIDataset.write_split(root, seed=4, out_path=tmp_path / "other.json")
    other = json.loads((tmp_path / "other.json").read_text())
    assert other["test"] != data["test"]

    # The split partitions the images, per class close to 80/5/15.
    parts = {name: {row[0] for row in data[name]} for name in ("train", "val", "test")}
    assert not (parts["train"] & parts["val"] or parts["train"] & parts["test"] or parts["val"] & parts["test"])
    all_images = {f"{folder}/{p.name}" for folder in FI_FOLDERS for p in (root / folder).iterdir()}
    assert set().union(*parts.values()) == all_images
    for folder, count in FI_FOLDERS.items():
        emotion = folder.lower()
        sizes = {name: sum(row[1] == emotion for row in data[name]) for name in parts}
        assert abs(sizes["test"] - count * 0.15) <= 0.5
        assert abs(sizes["val"] - count * 0.05) <= 0.5
        assert sizes["train"] == count - sizes["val"] - sizes["test"]

    # An existing file is read, not regenerated: a new image does not appear, an edited file is obeyed.
    write_jpeg(root / "awe" / "awe_new.jpg")
    assert FIDataset(root, "train", seed=3).entries == train.entries
    data["test"] = data["test"][:1]
    split_file.write_text(json.dumps(data))
    assert len(FIDataset(root, "test", seed=3)) == 1


def test_fi_folders_mapped_by_name(tmp_path, caplog):
    root = make_fi(tmp_path / "fi")
    (root / "happiness").mkdir()
    write_jpeg(root / "happiness" / "h.jpg")
    with caplog.at_level(logging.WARNING, logger="uniemo.data.fi"):
        datasets = [FIDataset(root, split, seed=0) for split in ("train", "val", "test")]
    assert "happiness" in caplog.text
    for dataset in datasets:
        assert dataset.labels == EMOTIONS
        for entry in dataset.entries:
            folder = Path(entry.path).parent.name
            # Alphabetical folder order would make anger 0 and Amusement 1; the name decides instead.
            assert entry.label == EMOTIONS.index(folder.lower())
            assert entry.scene is None and entry.objects == []
    counts = [sum(c) for c in zip(*(d.label_counts() for d in datasets), strict=True)]
    per_emotion = {folder.lower(): count for folder, count in FI_FOLDERS.items()}
    assert counts == [per_emotion.get(emotion, 0) for emotion in EMOTIONS]
    assert datasets[0][0]["pixel_values"].size == (8, 8)


def test_fi_split_file_option_and_unwritable_location(tmp_path):
    root = make_fi(tmp_path / "fi")
    dataset = FIDataset(root, "val", seed=1, split_file=tmp_path / "runs" / "fi.json")
    assert (tmp_path / "runs" / "fi.json").is_file() and not (root / "uniemo_split_seed1.json").exists()
    # Per class, round half up: 40 -> 2, 20 -> 1, 30 -> 2 (1.5), 10 -> 1 (0.5).
    assert len(dataset) == 6
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(OSError, match="split_file"):
        FIDataset(root, "train", split_file=blocker / "split.json")
    with pytest.raises(ValueError, match="fractions"):
        FIDataset(root, "train", split_file=tmp_path / "bad.json", fractions=(0.5, 0.2, 0.2))


# ---- EmotionROI -------------------------------------------------------------------------------------------


def make_emotionroi(root: Path) -> Path:
    train, test = [], []
    for k, emotion in enumerate(EMOTIONROI_EMOTIONS):
        for i in range(3):
            write_jpeg(root / "images" / emotion / f"{10 * k + i}.jpg", seed=k * 10 + i, size=8)
        # One list style per file: training.txt bare, testing.txt with the images/ prefix and CRLF.
        train += [f"{emotion}/{10 * k}.jpg", f"{emotion}/{10 * k + 1}.jpg"]
        test.append(f"images/{emotion}/{10 * k + 2}.jpg")
    (root / "training_testing_split").mkdir(parents=True)
    (root / "training_testing_split" / "training.txt").write_text("\n".join(train) + "\n\n")
    (root / "training_testing_split" / "testing.txt").write_bytes(("\r\n".join(test) + "\r\n").encode())
    return root


def test_emotionroi_lists(tmp_path):
    root = make_emotionroi(tmp_path / "roi")
    train, test = EmotionROIDataset(root, "train"), EmotionROIDataset(root, "test")
    assert train.labels == EMOTIONROI_EMOTIONS and len(train) == 12 and len(test) == 6
    assert train.label_counts() == [2] * 6 and test.label_counts() == [1] * 6
    assert test.entries[3].path == str(root / "images" / "joy" / "32.jpg") and test.entries[3].label == 3
    assert {e.path for e in train.entries}.isdisjoint(e.path for e in test.entries)
    assert test[5]["labels"] == EMOTIONROI_EMOTIONS.index("surprise")
    with pytest.raises(ValueError, match="train, test"):
        EmotionROIDataset(root, "val")
    (root / "training_testing_split" / "training.txt").write_text("joy/1.jpg\ncontempt/2.jpg\n")
    with pytest.raises(ValueError, match="line 2"):
        EmotionROIDataset(root, "train")


# ---- Twitter ----------------------------------------------------------------------------------------------


def make_twitter(root: Path, list_path: str, positives: int = 30, negatives: int = 20) -> Path:
    lines = []
    for i in range(positives + negatives):
        name = f"{i}.jpg"
        write_jpeg(root / "images" / name, seed=i, size=8)
        lines.append(f"{name} {1 if i < positives else 0}")
    (root / list_path).parent.mkdir(parents=True, exist_ok=True)
    (root / list_path).write_text("\n".join(reversed(lines)) + "\n")
    return root


def test_twitter_folds_partition_stratify_and_repeat(tmp_path):
    root = make_twitter(tmp_path / "twitter1", "ground_truth/twitter_five_agrees.txt")
    tests = [TwitterDataset(root, fold, "test") for fold in range(5)]
    test_paths = [{e.path for e in d.entries} for d in tests]
    assert all(len(paths) == 10 for paths in test_paths)
    assert set().union(*test_paths) == {str(root / "images" / f"{i}.jpg") for i in range(50)}
    # Stratified: every fold holds 6 positives and 4 negatives, like the whole set (30 / 20).
    assert all(d.label_counts() == [4, 6] for d in tests)
    assert tests[0].labels == SENTIMENTS and tests[0][0]["labels"] in (0, 1)
    for fold in range(5):
        train = TwitterDataset(root, fold, "train")
        assert len(train) == 40 and {e.path for e in train.entries}.isdisjoint(test_paths[fold])
    # Deterministic from the seed; another seed deals differently.
    assert [e.path for e in TwitterDataset(root, 2, "test").entries] == [e.path for e in tests[2].entries]
    assert {e.path for e in TwitterDataset(root, 2, "test", seed=1).entries} != test_paths[2]
    with pytest.raises(FileNotFoundError, match="twitter_three_agrees.txt"):
        TwitterDataset(root, 0, "test", subset="three")
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        TwitterDataset(root, 5, "test")


def test_twitter2_labels_file_and_bad_label(tmp_path):
    root = make_twitter(tmp_path / "twitter2", "labels.txt", positives=8, negatives=7)
    dataset = build_dataset("twitter2", root, "test", fold=1, num_folds=3)
    assert isinstance(dataset, TwitterDataset) and dataset.variant == "twitter2" and len(dataset) == 5
    assert sum(len(build_dataset("twitter2", root, "test", fold=f, num_folds=3)) for f in range(3)) == 15
    (root / "labels.txt").write_text("a.jpg 1\nb.jpg 2\n")
    with pytest.raises(ValueError, match="line 2"):
        TwitterDataset(root, 0, "train", variant="twitter2")


# ---- Custom image folder ----------------------------------------------------------------------------------


def make_folder(root: Path, with_split: bool = True) -> Path:
    rows = [
        {"file_name": "pics/a.jpg", "emotion": "Awe", "scene": "beach", "objects": ["Boat"], "split": "train"},
        {"file_name": "pics/b.jpg", "emotion": "fear", "split": "train"},
        {"file_name": "c.jpg", "emotion": "anger", "scene": "", "objects": [], "split": "test"},
        {"file_name": "d.jpg", "emotion": "awe"},
    ]
    for k, row in enumerate(rows):
        write_jpeg(root / row["file_name"], seed=k, size=8)
        if not with_split:
            row.pop("split", None)
    (root / "metadata.jsonl").write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    return root


def test_image_folder_metadata(tmp_path):
    root = make_folder(tmp_path / "mine")
    everything = ImageFolderDataset(root)
    assert len(everything) == 4 and everything.labels == EMOTIONS
    first = everything[0]
    assert first["labels"] == EMOTIONS.index("awe") and first["scene"] == "beach" and first["objects"] == ["Boat"]
    assert first["path"] == str(root / "pics" / "a.jpg")
    assert everything.entries[1].scene is None and everything.entries[1].objects == []
    assert everything.entries[2].scene is None  # an empty scene string counts as missing
    assert everything.attribute_vocab() == (["beach"], ["Boat"])

    # With split fields: filter; the line without a split belongs to no split.
    assert [Path(e.path).name for e in ImageFolderDataset(root, split="train").entries] == ["a.jpg", "b.jpg"]
    assert [Path(e.path).name for e in ImageFolderDataset(root, split="test").entries] == ["c.jpg"]
    with pytest.raises(ValueError, match="test, train"):
        ImageFolderDataset(root, split="val")
    # Without any split field, every line serves every split.
    assert len(ImageFolderDataset(make_folder(tmp_path / "nosplit", with_split=False), split="test")) == 4


def test_image_folder_label_space_and_errors(tmp_path):
    root = make_folder(tmp_path / "mine", with_split=False)
    (root / "metadata.jsonl").write_text(
        json.dumps({"file_name": "c.jpg", "emotion": "negative"})
        + "\n"
        + json.dumps({"file_name": "d.jpg", "emotion": "positive"})
        + "\n"
    )
    binary = ImageFolderDataset(root, labels=SENTIMENTS)
    assert [e.label for e in binary.entries] == [0, 1] and binary.labels == SENTIMENTS
    with pytest.raises(ValueError, match="line 1") as info:
        ImageFolderDataset(root)
    assert "amusement" in str(info.value)
    (root / "metadata.jsonl").write_text('{"file_name": "c.jpg"}\n')
    with pytest.raises(ValueError, match="emotion"):
        ImageFolderDataset(root)


# ---- build_dataset ----------------------------------------------------------------------------------------


def test_build_dataset_dispatch(tmp_path):
    emoset = make_emoset(tmp_path / "emoset")
    transform = build_transform(12, train=False)
    built = {
        "emoset": build_dataset("emoset", emoset, "train", transform=transform),
        "emoshapes": build_dataset("emoshapes", emoset, "test", num_classes=2),
        "fi": build_dataset("fi", make_fi(tmp_path / "fi"), "test", seed=5),
        "emotionroi": build_dataset("emotionroi", make_emotionroi(tmp_path / "roi"), "train"),
        "twitter1": build_dataset(
            "twitter1",
            make_twitter(tmp_path / "t1", "ground_truth/twitter_four_agrees.txt"),
            "train",
            subset="four",
        ),
        "twitter2": build_dataset("twitter2", make_twitter(tmp_path / "t2", "labels.txt"), "test"),
        "folder": build_dataset("folder", make_folder(tmp_path / "folder"), None, on_error="skip"),
    }
    assert set(built) == set(DATASET_NAMES)
    expected = (
        EmoSetDataset,
        EmoSetDataset,
        FIDataset,
        EmotionROIDataset,
        TwitterDataset,
        TwitterDataset,
        ImageFolderDataset,
    )
    for (name, dataset), cls in zip(built.items(), expected, strict=True):
        assert type(dataset) is cls, name
        assert len(dataset) > 0
    assert built["emoset"][0]["pixel_values"].shape == (3, 12, 12)
    assert built["emoshapes"].labels == SENTIMENTS
    assert built["fi"].split_file == os.path.join(tmp_path / "fi", "uniemo_split_seed5.json")
    assert built["twitter1"].variant == "twitter1" and built["twitter1"].fold == 0 and len(built["twitter1"]) == 40
    assert built["folder"].on_error == "skip" and len(built["folder"]) == 4
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'") as info:
        build_dataset("imagenet", tmp_path, "train")
    assert all(name in str(info.value) for name in DATASET_NAMES)
