"""EmoShapes' writer: the dataset config, the plan of every image, and the files in EmoSet's layout.

Everything is deterministic from ``EmoShapesConfig.seed``: each split has its own random streams and
each image its own generator, so the same config gives byte-identical files, and changing ``num_train``
leaves the val and test images unchanged (only their file numbers shift).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from uniemo.constants import EMOTIONS
from uniemo.data.emoshapes.render import MAX_OBJECTS_LIMIT, check_size, render
from uniemo.data.emoshapes.rule import (EMOTION_TABLE, OBJECTS, OBJECT_GROUPS, SCENES, SCENE_GROUPS, caption_of,
                                        sample_composition)

SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass
class EmoShapesConfig:
    """What defines an EmoShapes dataset; written to ``emoshapes.json`` next to the data.

    Args:
        image_size: image side in pixels (at most 64).
        num_train: number of training images.
        num_val: number of validation images.
        num_test: number of test images.
        seed: the only source of randomness.
        label_noise: probability that an image's label is replaced by a random other emotion.
        max_objects: each image holds 1..``max_objects`` objects (at most ``MAX_OBJECTS_LIMIT``).
        jpeg_quality: JPEG quality of the written images.
    """

    image_size: int = 64
    num_train: int = 4000
    num_val: int = 400
    num_test: int = 800
    seed: int = 0
    label_noise: float = 0.05
    max_objects: int = 2
    jpeg_quality: int = 95

    def __post_init__(self) -> None:
        check_size(self.image_size)
        if min(self.num_train, self.num_val, self.num_test, self.seed) < 0:
            raise ValueError("split sizes and the seed must be >= 0")
        if not 0.0 <= self.label_noise <= 1.0:
            raise ValueError(f"label_noise must be in [0, 1], got {self.label_noise}")
        if not 1 <= self.max_objects <= MAX_OBJECTS_LIMIT:
            raise ValueError(f"max_objects must be in 1..{MAX_OBJECTS_LIMIT}, got {self.max_objects}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100, got {self.jpeg_quality}")


@dataclass
class PlannedImage:
    """One image to draw: its composition, labels, file stem and its own random seed."""

    split: str
    scene: str
    objects: list[str]
    true_emotion: str
    emotion: str
    seed: tuple[int, ...]
    stem: str = ""


def plan(config: EmoShapesConfig) -> list[PlannedImage]:
    """Every image's composition and label, split by split, before any drawing.

    Each split draws from its own stream, so the val and test sets do not change with ``num_train``.
    True emotions are exactly balanced (round-robin, then shuffled).
    """
    items: list[PlannedImage] = []
    for split_id, split in enumerate(SPLITS):
        n = getattr(config, f"num_{split}")
        rng = np.random.default_rng([config.seed, split_id, 0])
        labels = rng.permutation(np.arange(n) % len(EMOTIONS))
        for i, label in enumerate(labels):
            true_emotion = EMOTIONS[int(label)]
            scene, objects = sample_composition(rng, true_emotion, config.max_objects)
            emotion = true_emotion
            if rng.random() < config.label_noise:
                others = [e for e in EMOTIONS if e != true_emotion]
                emotion = others[int(rng.integers(len(others)))]
            items.append(PlannedImage(split, scene, objects, true_emotion, emotion, (config.seed, split_id, 1, i)))
    counters = dict.fromkeys(EMOTIONS, 0)
    for item in items:  # EmoSet numbers files within each emotion folder, across all splits
        item.stem = f"{item.emotion}_{counters[item.emotion]:05d}"
        counters[item.emotion] += 1
    return items


def _draw_item(item: PlannedImage, image_size: int, quality: int, root: Path) -> None:
    """Render, encode and write one image and its annotation."""
    image = render(item.scene, item.objects, np.random.default_rng(list(item.seed)), image_size)
    image.save(os.path.join(root, "image", item.emotion, item.stem + ".jpg"), format="JPEG",
               quality=quality, subsampling=0)  # 4:4:4: chroma subsampling smears colour at 64 px
    annotation = {
        "scene": item.scene,
        "object": item.objects,
        "caption": caption_of(item.scene, item.objects),
        "emotion": item.emotion,
        "true_emotion": item.true_emotion,
    }
    _write_json(os.path.join(root, "annotation", item.emotion, item.stem + ".json"), annotation)


def _write_json(path: str | os.PathLike, data: object, indent: int | None = None) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=indent)
        f.write("\n")


def _label_map(labels: Sequence[str]) -> dict[str, dict]:
    """EmoSet's ``info.json`` entry: ``label2idx`` and ``idx2label`` (keys are strings of ints)."""
    return {
        "label2idx": {x: i for i, x in enumerate(labels)},
        "idx2label": {str(i): x for i, x in enumerate(labels)},
    }


def generate_emoshapes(
    out_dir: str | os.PathLike,
    config: EmoShapesConfig | None = None,
    progress: bool = True,
) -> Path:
    """Write an EmoShapes dataset in EmoSet's layout.

    Args:
        out_dir: the dataset folder (created; existing files of the same names are overwritten).
        config: what to generate; ``EmoShapesConfig()`` when ``None``.
        progress: show a tqdm progress bar.

    Returns:
        The dataset folder, readable by ``EmoSetDataset`` / ``build_dataset("emoshapes", ...)``.
    """
    config = config or EmoShapesConfig()
    root = Path(out_dir)
    items = plan(config)
    for emotion in EMOTIONS:
        (root / "image" / emotion).mkdir(parents=True, exist_ok=True)
        (root / "annotation" / emotion).mkdir(parents=True, exist_ok=True)
    # One process: about 2-3 ms an image, so worker processes (each importing torch through uniemo.data)
    # cost more than they save at these sizes.
    for item in tqdm(items, desc="EmoShapes", unit="img", disable=not progress):
        _draw_item(item, config.image_size, config.jpeg_quality, root)
    for split in SPLITS:
        rows = [[it.emotion, f"image/{it.emotion}/{it.stem}.jpg", f"annotation/{it.emotion}/{it.stem}.json"]
                for it in items if it.split == split]
        _write_json(root / f"{split}.json", rows)
    _write_json(root / "info.json",
                {"emotion": _label_map(EMOTIONS), "scene": _label_map(SCENES), "object": _label_map(OBJECTS)},
                indent=2)
    _write_json(root / "emoshapes.json", {
        "config": asdict(config),
        "scene_groups": SCENE_GROUPS,
        "object_groups": OBJECT_GROUPS,
        "emotion_table": EMOTION_TABLE,
        "rule": "emotion = emotion_table[scene group of scene][object group of objects[0]]; with probability "
                "label_noise the label becomes a uniformly drawn other emotion (true_emotion keeps the rule's)",
    }, indent=2)
    return root


def preview_grid(config: EmoShapesConfig | None = None, per_row: int = 8, scale: int = 2) -> Image.Image:
    """A grid of fresh samples, one row per emotion (in ``EMOTIONS`` order), for looking at the world."""
    config = config or EmoShapesConfig()
    rng = np.random.default_rng([config.seed, 99])
    side = config.image_size * scale
    grid = Image.new("RGB", (per_row * (side + 2), len(EMOTIONS) * (side + 2)), (255, 255, 255))
    for row, emotion in enumerate(EMOTIONS):
        for col in range(per_row):
            scene, objects = sample_composition(rng, emotion, config.max_objects)
            tile = render(scene, objects, rng, config.image_size).resize((side, side), Image.Resampling.NEAREST)
            grid.paste(tile, (col * (side + 2), row * (side + 2)))
    return grid


def main(argv: Sequence[str] | None = None) -> Path:
    """CLI: ``python -m uniemo.data.emoshapes --out DIR [--num-train N] [--seed S] [--image-size 64]``."""
    defaults = EmoShapesConfig()
    parser = argparse.ArgumentParser(description="Generate the EmoShapes dataset in EmoSet's layout.")
    parser.add_argument("--out", required=True, help="output dataset folder")
    parser.add_argument("--num-train", type=int, default=defaults.num_train)
    parser.add_argument("--num-val", type=int, default=defaults.num_val)
    parser.add_argument("--num-test", type=int, default=defaults.num_test)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--image-size", type=int, default=defaults.image_size)
    parser.add_argument("--label-noise", type=float, default=defaults.label_noise)
    parser.add_argument("--max-objects", type=int, default=defaults.max_objects)
    parser.add_argument("--preview", default=None, help="also save a preview grid PNG here")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    config = EmoShapesConfig(
        image_size=args.image_size, num_train=args.num_train, num_val=args.num_val, num_test=args.num_test,
        seed=args.seed, label_noise=args.label_noise, max_objects=args.max_objects,
    )
    start = time.perf_counter()
    root = generate_emoshapes(args.out, config, progress=not args.no_progress)
    total = config.num_train + config.num_val + config.num_test
    print(f"wrote {total} images to {root} in {time.perf_counter() - start:.1f} s")
    if args.preview:
        preview_grid(config).save(args.preview)
        print(f"preview grid: {args.preview}")
    return root

