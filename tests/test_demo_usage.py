"""The demo as people use it: phone photos, UniEmo-Tiny's limits said plainly, seeds copied from captions,
errors that stay readable in their tab."""

import re
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import ExifTags, Image, ImageOps

from demo import handlers
from uniemo import UniEmoPipeline

EXAMPLE = min(handlers.EXAMPLES_DIR.glob("*.png"))
BUNDLED = handlers.ASSETS_DIR / "uniemo-tiny"
STEPS = 2


@pytest.fixture(scope="module")
def pipe(tiny_model_dir):
    return UniEmoPipeline.from_pretrained(tiny_model_dir)


def component_props(page, elem_id: str) -> dict | None:
    return next((c["props"] for c in page.config["components"] if c["props"].get("elem_id") == elem_id), None)


# ----------------------------------------------------------------------------------- EXIF orientation


def sideways(upright: Image.Image, path, fmt: str):
    """``upright`` stored as a phone stores a portrait photo: pixels turned a quarter left, EXIF orientation 6
    ("turn right to view")."""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    upright.transpose(Image.Transpose.ROTATE_90).save(path, format=fmt, exif=exif)
    return path


def test_an_exif_rotated_photo_is_classified_upright(pipe, tmp_path):
    upright = Image.open(EXAMPLE).convert("RGB")
    stored = sideways(upright, tmp_path / "phone.png", "PNG")  # lossless: the upright pixels exactly
    assert Image.open(stored).getexif()[ExifTags.Base.Orientation] == 6
    assert np.array_equal(np.asarray(handlers.read_image(stored)), np.asarray(upright))
    as_taken = handlers.classify_image(pipe, stored)
    assert as_taken.probs == handlers.classify_image(pipe, upright).probs
    assert as_taken.scene_overlay.tobytes() == handlers.classify_image(pipe, upright).scene_overlay.tobytes()
    # a PIL image that still carries its EXIF is turned as well
    assert handlers.classify_image(pipe, Image.open(stored)).probs == as_taken.probs
    # and the turn matters: the stored (sideways) pixels read differently
    lying = handlers.classify_image(pipe, Image.open(stored).convert("RGB").transpose(Image.Transpose.ROTATE_90))
    assert max(abs(lying.probs[e] - as_taken.probs[e]) for e in pipe.emotions) > 1e-4


def test_a_phone_jpeg_with_orientation_6_is_classified_as_its_transposed_image(pipe, tmp_path):
    photo = sideways(Image.open(EXAMPLE).convert("RGB").resize((96, 64)), tmp_path / "photo.jpg", "JPEG")
    transposed = ImageOps.exif_transpose(Image.open(photo)).convert("RGB")
    assert transposed.size == (96, 64) and Image.open(photo).size == (64, 96)
    assert handlers.read_image(photo).size == (96, 64)
    assert handlers.classify_image(pipe, photo).probs == handlers.classify_image(pipe, transposed).probs


def test_images_without_orientation_or_with_broken_exif_are_left_as_they_are(tmp_path):
    plain = Image.open(EXAMPLE).convert("RGB")
    assert handlers.upright(plain) is plain
    path = tmp_path / "odd.jpg"
    plain.save(path, exif=b"Exif\x00\x00garbage")
    assert handlers.read_image(path).size == plain.size


# ---------------------------------------------------------------------------------------- UniEmo-Tiny


def test_emoshapes_models_are_recognised_by_their_record_not_their_name():
    assert handlers.trained_on_emoshapes(SimpleNamespace(info={"stage1": "train/tiny_world.py"}))
    assert handlers.trained_on_emoshapes(SimpleNamespace(info={
        "base_models": {"clip": "clip/ (tiny CLIP pretrained on EmoShapes captions)"}}))
    # a folder called uniemo-tiny is not enough; a full model's record does not match
    assert not handlers.trained_on_emoshapes(SimpleNamespace(info={"path": "/models/uniemo-tiny"}))
    assert not handlers.trained_on_emoshapes(SimpleNamespace(info={
        "stage1": "/runs/emoset-vit-l-14/final", "transfer_nouns": ["bench", "cup"]}))


def test_the_bundled_tiny_model_says_it_knows_only_emoshapes(pipe, monkeypatch, tmp_path):
    from demo.ui import build_demo

    if not (BUNDLED / "uniemo.json").is_file():
        pytest.skip("needs the bundled UniEmo-Tiny")
    monkeypatch.setenv("GRADIO_EXAMPLES_CACHE", str(tmp_path / "examples_cache"))
    notice = component_props(build_demo(UniEmoPipeline.from_pretrained(BUNDLED)), "cls-notice")
    assert notice is not None
    assert "only EmoShapes' synthetic scenes" in notice["value"] and "not to be trusted" in notice["value"]
    assert "photo" in notice["value"]
    # a model trained on other data (here the test model) shows no such notice
    assert handlers.understand_notice(pipe) == ""
    assert component_props(build_demo(pipe), "cls-notice") is None


# ---------------------------------------------------------------------------------- seeds in captions


def caption_seeds(gallery) -> list[int]:
    return [int(re.search(r"seed (\d+)$", caption).group(1)) for _, caption in gallery]


@pytest.mark.parametrize("render", [
    lambda p, n, seed: handlers.generate_images(p, "awe", n, seed, STEPS),
    lambda p, n, seed: handlers.transfer_images(p, "fear", "lamp", n, seed, STEPS)[0],
    lambda p, n, seed: handlers.fuse_images(p, "awe", "fear", 0.3, n, seed, STEPS)[0],
], ids=["generate", "transfer", "fuse"])
@pytest.mark.parametrize("seed", [5, handlers.MAX_SEED - 2])
def test_a_captions_seed_typed_back_gives_the_same_image(pipe, render, seed):
    """Image i of a request shows seed + i; that number, typed into the seed box for one image, is accepted and
    renders the same image, up to the top of the seed range. (A batch of one and a batch of three may round
    a pixel differently, by a level or two out of 255; another seed changes the image far more.)"""
    gallery = render(pipe, 3, seed)
    seeds = caption_seeds(gallery)
    assert seeds == [seed, seed + 1, seed + 2] and max(seeds) <= handlers.MAX_SEED
    pixels = [np.asarray(image, dtype=int) for image, _ in gallery]
    for shown, typed in zip(pixels, seeds, strict=True):
        again = np.asarray(render(pipe, 1, typed)[0][0], dtype=int)
        assert np.abs(again - shown).max() <= 2
    assert np.abs(pixels[0] - pixels[1]).max() > 20


def test_a_seed_whose_last_image_would_pass_the_range_is_refused_clearly(pipe):
    with pytest.raises(ValueError, match=r"seed for 3 images must be from 0 to 2147483645, got 2147483646"):
        handlers.generate_images(pipe, "awe", 3, handlers.MAX_SEED - 1, STEPS)
    assert caption_seeds(handlers.generate_images(pipe, "awe", 1, handlers.MAX_SEED, STEPS)) == [handlers.MAX_SEED]


def test_the_seed_box_takes_every_seed_a_caption_can_show(pipe, monkeypatch, tmp_path):
    from demo.ui import build_demo

    monkeypatch.setenv("GRADIO_EXAMPLES_CACHE", str(tmp_path / "examples_cache"))
    page = build_demo(pipe)
    boxes = [c["props"] for c in page.config["components"]
             if c["type"] == "number" and c["props"].get("label", "").startswith("Seed")]
    assert len(boxes) == 3  # Generate, Transfer, Fuse
    for box in boxes:
        assert box["minimum"] == 0 and box["maximum"] == handlers.MAX_SEED and box["precision"] == 0


# ------------------------------------------------------------------------------------ the status line


def test_each_tab_has_a_status_line(pipe, monkeypatch, tmp_path):
    from demo.ui import build_demo

    monkeypatch.setenv("GRADIO_EXAMPLES_CACHE", str(tmp_path / "examples_cache"))
    page = build_demo(pipe)
    for elem_id in ("cls-status", "gen-status", "tr-status", "fu-status"):
        props = component_props(page, elem_id)
        assert props is not None and props["value"] == "" and props.get("visible", True)


def test_the_status_line_shows_the_error_as_plain_text():
    from demo.ui import status_markdown

    assert status_markdown("") == ""
    line = status_markdown("'<b>x</b>' is not an *image*\nfile | [link](http://a)")
    assert line.startswith("**Could not run:** ")
    text = line.removeprefix("**Could not run:** ")
    assert not re.search(r"(?<!\\)[<>*\[\]|]", text)  # every Markdown/HTML character escaped
    assert text.replace("\\", "") == "'<b>x</b>' is not an *image* file | [link](http://a)"
    assert "\n" not in line


def test_the_status_board_hands_each_session_its_own_last_error():
    from demo.ui import _shown_to_user, _StatusBoard

    board = _StatusBoard(limit=2)
    one, two = SimpleNamespace(session_hash="one"), SimpleNamespace(session_hash="two")
    show = board.show("classify")
    with pytest.raises(Exception, match="bad image"), _shown_to_user(board.recorder(one, "classify")):
        raise ValueError("bad image")
    assert show(two) == "" and "bad image" in show(one)
    assert show(one) == ""  # shown once
    with pytest.raises(Exception), _shown_to_user(board.recorder(one, "classify")):
        raise ValueError("first")
    with _shown_to_user(board.recorder(one, "classify")):
        pass  # a new run forgets the last error
    assert show(one) == ""
    assert board.recorder(None, "classify") is None  # examples cached at start-up have no page
    for session in ("a", "b", "c"):
        board.recorder(SimpleNamespace(session_hash=session), "fuse")("x")
    assert board.show("fuse")(SimpleNamespace(session_hash="a")) == ""  # the oldest was dropped past the limit
