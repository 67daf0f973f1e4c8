"""EmoShapes' output pinned to fixed digests: a small seeded set must be drawn and written exactly as before.

Refactoring the generator (the rule, the painters, the composition, the writer) must not change one pixel
or one byte of the JSON files. The digests were taken from the generator before it was split into the
``uniemo.data.emoshapes`` package. Pixels are hashed as rendered, before JPEG encoding, so the digest does not
depend on the JPEG encoder; it does depend on Pillow's rasteriser, so a Pillow upgrade that draws shapes
differently changes the world and fails here on purpose (re-pin only after looking at the images).
"""

from __future__ import annotations

import hashlib

import numpy as np

from uniemo.data.emoshapes import EmoShapesConfig, generate_emoshapes, plan, preview_grid, render

CONFIG = EmoShapesConfig(image_size=32, num_train=24, num_val=8, num_test=8, seed=11, label_noise=0.25,
                         max_objects=3)
PIXELS_SHA256 = "06727ba636dce8185dcaeba13dfe08bc9b702eaf1bf2ce595f875cc7ddfb6745"
PREVIEW_SHA256 = "8bf2eef6d36912573a821b053d9af4d5eef1dc9ea6c0ee13ad031644e5de6a1e"
JSON_SHA256 = "6b0efdfd80a601345a268c2bfbc0ead4c3ec25925e2105febf2837c7bece2ffa"


def test_rendered_pixels_of_a_seeded_set_are_pinned():
    digest = hashlib.sha256()
    for item in plan(CONFIG):  # each image from its own generator, as generate_emoshapes draws it
        image = render(item.scene, item.objects, np.random.default_rng(list(item.seed)), CONFIG.image_size)
        digest.update(image.tobytes())
    assert digest.hexdigest() == PIXELS_SHA256


def test_preview_grid_is_pinned():
    grid = preview_grid(CONFIG, per_row=3, scale=1)  # one shared generator: sampling and drawing in sequence
    assert hashlib.sha256(grid.tobytes()).hexdigest() == PREVIEW_SHA256


def test_written_json_files_are_pinned(tmp_path):
    root = generate_emoshapes(tmp_path / "set", CONFIG, progress=False)
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.json")):  # split files, info.json, emoshapes.json, every annotation
        digest.update(path.relative_to(root).as_posix().encode() + path.read_bytes())
    assert digest.hexdigest() == JSON_SHA256
