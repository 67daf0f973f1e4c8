"""EmoShapes, the synthetic world of docs/method.md section 10: the rule, the on-disk format, determinism,
and that scenes and objects are visually learnable.

Datasets are generated small (tens of images at 32 px) in ``tmp_path``; statistics that need thousands
of samples are checked on the generator's plan, which draws labels and compositions without rendering.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from uniemo.constants import EMOTIONS, POSITIVE_EMOTIONS
from uniemo.data import EmoSetDataset, build_dataset
from uniemo.data.emoshapes import (
    CELLS_OF,
    EMOTION_TABLE,
    OBJECT_GROUP_OF,
    OBJECT_GROUPS,
    OBJECTS,
    SCENE_GROUP_OF,
    SCENE_GROUPS,
    SCENES,
    EmoShapesConfig,
    caption_of,
    emotion_of,
    generate_emoshapes,
    main,
    plan as _plan,
    preview_grid,
    render,
    sample_composition,
)

SMALL = dict(image_size=32, num_train=64, num_val=16, num_test=24)


def tree_digest(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root``."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> tuple[Path, EmoShapesConfig]:
    config = EmoShapesConfig(seed=3, label_noise=0.2, **SMALL)
    return generate_emoshapes(tmp_path_factory.mktemp("emoshapes"), config, progress=False), config


# ---------------------------------------------------------------------------------------------------- rule


def test_vocabularies_are_partitioned_into_groups():
    assert len(SCENES) == len(set(SCENES)) >= 10
    assert len(OBJECTS) == len(set(OBJECTS)) >= 12
    assert set(SCENE_GROUP_OF) == set(SCENES) and set(OBJECT_GROUP_OF) == set(OBJECTS)
    assert set(EMOTION_TABLE) == set(SCENE_GROUPS)
    assert all(set(row) == set(OBJECT_GROUPS) for row in EMOTION_TABLE.values())


def test_each_emotion_fills_two_cells_in_distinct_rows_and_columns():
    cells = Counter(e for row in EMOTION_TABLE.values() for e in row.values())
    assert cells == Counter({e: 2 for e in EMOTIONS})
    for emotion, ((sg1, og1), (sg2, og2)) in CELLS_OF.items():
        assert sg1 != sg2 and og1 != og2, emotion


def test_neither_scene_nor_object_alone_determines_the_emotion():
    reachable_by_scene = {s: {emotion_of(s, [o]) for o in OBJECTS} for s in SCENES}
    reachable_by_object = {o: {emotion_of(s, [o]) for s in SCENES} for o in OBJECTS}
    assert all(len(v) >= 2 for v in reachable_by_scene.values()), reachable_by_scene
    assert all(len(v) >= 2 for v in reachable_by_object.values()), reachable_by_object
    assert set().union(*reachable_by_scene.values()) == set(EMOTIONS)
    # Not even the valence is fixed by one of them.
    for reachable in (*reachable_by_scene.values(), *reachable_by_object.values()):
        assert reachable & set(POSITIVE_EMOTIONS) and reachable - set(POSITIVE_EMOTIONS)


def test_rule_reads_the_first_object_and_rejects_unknown_names():
    assert emotion_of("room", ["balloon"]) == "amusement"
    assert emotion_of("cemetery", ["skull"]) == "amusement"
    assert emotion_of("cemetery", ["balloon", "skull"]) == "sadness"
    assert emotion_of("sea", ["spider"]) == "fear"
    with pytest.raises(ValueError, match="unknown scene"):
        emotion_of("moon", ["balloon"])
    with pytest.raises(ValueError, match="unknown object"):
        emotion_of("room", ["dragon"])
    with pytest.raises(ValueError):
        emotion_of("room", [])


def test_sample_composition_hits_its_emotion_with_one_object_group():
    rng = np.random.default_rng(0)
    for emotion in EMOTIONS:
        for _ in range(20):
            scene, objects = sample_composition(rng, emotion, max_objects=3)
            assert emotion_of(scene, objects) == emotion
            assert 1 <= len(objects) <= 3 and len(set(objects)) == len(objects)
            assert len({OBJECT_GROUP_OF[o] for o in objects}) == 1


def test_caption_format():
    assert caption_of("room", ["balloon", "cake"]) == "a balloon and a cake in a room"
    assert caption_of("cemetery", ["skull"]) == "a skull in a cemetery"
    assert caption_of("night_city", ["knife"]) == "a knife in a night city"
    assert caption_of("sea", ["sun", "tree", "flower"]) == "a sun, a tree and a flower in a sea"


# ---------------------------------------------------------------------------------------------------- plan


def test_plan_balances_emotions_and_applies_the_noise_rate():
    config = EmoShapesConfig(num_train=4000, num_val=400, num_test=800, label_noise=0.05, seed=1)
    items = _plan(config)
    train = [it for it in items if it.split == "train"]
    assert Counter(it.split for it in items) == {"train": 4000, "val": 400, "test": 800}
    assert set(Counter(it.true_emotion for it in train).values()) == {500}  # exactly balanced
    observed = Counter(it.emotion for it in train)
    assert all(abs(n - 500) <= 60 for n in observed.values()), observed
    noisy = [it for it in items if it.emotion != it.true_emotion]
    assert 0.035 < len(noisy) / len(items) < 0.065
    assert all(emotion_of(it.scene, it.objects) == it.true_emotion for it in items)
    assert {len(it.objects) for it in items} == {1, 2}
    assert set(it.scene for it in items) == set(SCENES) and {o for it in items for o in it.objects} == set(OBJECTS)


def test_plan_without_noise_and_val_test_independent_of_num_train():
    clean = _plan(EmoShapesConfig(num_train=200, num_val=40, num_test=40, label_noise=0.0))
    assert all(it.emotion == it.true_emotion for it in clean)
    more = _plan(EmoShapesConfig(num_train=300, num_val=40, num_test=40, label_noise=0.0))
    def held_out(items):
        return [(it.scene, it.objects, it.emotion, it.seed) for it in items if it.split != "train"]

    assert held_out(clean) == held_out(more)


def test_config_validation():
    with pytest.raises(ValueError):
        EmoShapesConfig(image_size=128)
    with pytest.raises(ValueError):
        EmoShapesConfig(max_objects=0)
    with pytest.raises(ValueError):
        EmoShapesConfig(label_noise=1.5)


# ---------------------------------------------------------------------------------------------------- render


def test_render_size_mode_and_determinism():
    a = render("forest", ["spider", "knife"], np.random.default_rng(7), 48)
    b = render("forest", ["spider", "knife"], np.random.default_rng(7), 48)
    c = render("forest", ["spider", "knife"], np.random.default_rng(8), 48)
    assert a.size == (48, 48) and a.mode == "RGB"
    assert a.tobytes() == b.tobytes() and a.tobytes() != c.tobytes()
    assert render("desert", [], np.random.default_rng(0), 16).size == (16, 16)  # a bare scene
    with pytest.raises(ValueError):
        render("desert", ["dragon"], np.random.default_rng(0), 32)
    with pytest.raises(ValueError):
        render("desert", ["sun"], np.random.default_rng(0), 96)


def test_preview_grid_has_one_row_per_emotion():
    grid = preview_grid(EmoShapesConfig(image_size=16), per_row=3, scale=1)
    assert grid.size == (3 * 18, len(EMOTIONS) * 18)


# ---------------------------------------------------------------------------------------------------- files


def test_layout_info_and_split_files(small_set):
    root, config = small_set
    info = json.loads((root / "info.json").read_text())
    for key, labels in (("emotion", EMOTIONS), ("scene", SCENES), ("object", OBJECTS)):
        assert info[key]["label2idx"] == {x: i for i, x in enumerate(labels)}
        assert info[key]["idx2label"] == {str(i): x for i, x in enumerate(labels)}
    numbers: dict[str, list[int]] = {e: [] for e in EMOTIONS}
    for split in ("train", "val", "test"):
        rows = json.loads((root / f"{split}.json").read_text())
        assert len(rows) == getattr(config, f"num_{split}")
        for emotion, image_rel, annotation_rel in rows:
            stem = Path(image_rel).stem
            assert image_rel == f"image/{emotion}/{stem}.jpg"
            assert annotation_rel == f"annotation/{emotion}/{stem}.json"
            prefix, number = stem.rsplit("_", 1)
            assert prefix == emotion and len(number) == 5
            numbers[emotion].append(int(number))
            with Image.open(root / image_rel) as image:
                assert image.format == "JPEG" and image.mode == "RGB" and image.size == (32, 32)
    # Numbered within each emotion across all splits, from 0 without gaps.
    assert all(sorted(n) == list(range(len(n))) for n in numbers.values())
    record = json.loads((root / "emoshapes.json").read_text())
    assert record["config"] == {**record["config"], "seed": 3, "label_noise": 0.2, **SMALL}
    assert record["emotion_table"] == EMOTION_TABLE


def test_annotations_follow_the_rule(small_set):
    root, _ = small_set
    noisy = 0
    for path in sorted((root / "annotation").rglob("*.json")):
        annotation = json.loads(path.read_text())
        scene, objects = annotation["scene"], annotation["object"]
        assert annotation["true_emotion"] == emotion_of(scene, objects)
        assert annotation["caption"] == caption_of(scene, objects)
        assert annotation["emotion"] == path.parent.name
        noisy += annotation["emotion"] != annotation["true_emotion"]
    assert 0 < noisy < 0.45 * 104  # label_noise 0.2 over 104 images


def test_emoset_loader_reads_the_output(small_set):
    root, config = small_set
    for split in ("train", "val", "test"):
        dataset = EmoSetDataset(root, split)
        rows = json.loads((root / f"{split}.json").read_text())
        assert len(dataset) == len(rows) == getattr(config, f"num_{split}")
        for entry, (emotion, _, annotation_rel) in zip(dataset.entries, rows):
            annotation = json.loads((root / annotation_rel).read_text())
            assert EMOTIONS[entry.label] == emotion
            assert entry.scene == annotation["scene"] and entry.objects == annotation["object"]
    record = EmoSetDataset(root, "train")[0]
    assert record["pixel_values"].size == (32, 32) and record["pixel_values"].mode == "RGB"
    train = build_dataset("emoshapes", root, "train")
    assert [e.path for e in train.entries] == [e.path for e in EmoSetDataset(root, "train").entries]
    assert sum(train.label_counts()) == config.num_train and min(train.label_counts()) > 0
    binary = build_dataset("emoshapes", root, "val", num_classes=2)
    assert set(binary.label_counts()) != {0}


def test_generation_is_byte_identical_for_a_seed(small_set, tmp_path):
    root, config = small_set
    again = generate_emoshapes(tmp_path / "again", config, progress=False)
    assert tree_digest(root) == tree_digest(again)
    other = generate_emoshapes(tmp_path / "other", EmoShapesConfig(**{**vars(config), "seed": 4}), progress=False)
    digest, digest_other = tree_digest(root), tree_digest(other)
    assert (root / "train.json").read_bytes() != (other / "train.json").read_bytes()
    shared_images = [p for p in set(digest) & set(digest_other) if p.endswith(".jpg")]
    assert shared_images and all(digest[p] != digest_other[p] for p in shared_images)


def test_cli(tmp_path, capsys):
    root = main(["--out", str(tmp_path / "cli"), "--num-train", "16", "--num-val", "8", "--num-test", "8",
                 "--seed", "5", "--image-size", "24", "--no-progress"])
    assert "wrote 32 images" in capsys.readouterr().out
    assert len(EmoSetDataset(root, "train")) == 16
    config = json.loads((root / "emoshapes.json").read_text())["config"]
    assert config["seed"] == 5 and config["image_size"] == 24


# ---------------------------------------------------------------------------------------------------- learnability


def test_scenes_and_objects_are_learnable_from_16px_pixels():
    """Held-out accuracy far above chance from raw 16x16 pixels: a linear probe for the scene and a
    small MLP for the object (which moves, turns and changes size, so a linear probe is weaker)."""
    rng = np.random.default_rng(11)
    pixels, scenes, objects = [], [], []
    for i in range(800):
        scene, objs = sample_composition(rng, EMOTIONS[i % len(EMOTIONS)], max_objects=1)
        image = render(scene, objs, rng, 32).resize((16, 16), Image.Resampling.BOX)
        pixels.append(np.asarray(image))
        scenes.append(SCENES.index(scene))
        objects.append(OBJECTS.index(objs[0]))
    x = torch.tensor(np.stack(pixels), dtype=torch.float32).flatten(1) / 255  # (N, 16 * 16 * 3)
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # these matmuls are tiny; a second thread only slows them on a busy machine

    def held_out_accuracy(model: torch.nn.Module, y: torch.Tensor, steps: int = 100) -> float:
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        for _ in range(steps):  # full-batch training on the first 600, testing on the last 200
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x[:600]), y[:600]).backward()
            optimizer.step()
        with torch.no_grad():
            return (model(x[600:]).argmax(1) == y[600:]).float().mean().item()

    try:
        scene_acc = held_out_accuracy(torch.nn.Linear(x.shape[1], len(SCENES)), torch.tensor(scenes))
        mlp = torch.nn.Sequential(
            torch.nn.Linear(x.shape[1], 256), torch.nn.ReLU(), torch.nn.Linear(256, len(OBJECTS))
        )
        object_acc = held_out_accuracy(mlp, torch.tensor(objects))
    finally:
        torch.set_num_threads(threads)
    assert scene_acc > 0.8, scene_acc  # chance 1/12
    assert object_acc > 0.2, object_acc  # chance 1/16
