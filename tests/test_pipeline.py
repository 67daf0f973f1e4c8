"""UniEmoPipeline on a tiny model folder built by the real scripts (stage 1, probe/α, stage 2)."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from uniemo import EMOTIONS, UniEmoPipeline


@pytest.fixture(scope="module")
def pipe(tiny_model_dir):
    p = UniEmoPipeline.from_pretrained(tiny_model_dir)
    p.defaults.update(num_inference_steps=2)
    return p


def pixels(images):
    return np.stack([np.asarray(im) for im in images])


def test_loads_offline_with_every_component(pipe, tiny_model_dir):
    info = json.loads((tiny_model_dir / "uniemo.json").read_text())
    assert set(info["components"]) >= {"classifier", "fusion", "emotion_space", "attributes", "correlation",
                                       "diffusion"}
    assert pipe.emotions == EMOTIONS
    assert pipe.correlation is not None


def test_generate_transfer_fuse_return_pil_images(pipe):
    for images in (pipe.generate("awe", num_images=2, seed=0),
                   pipe.transfer("fear", "lamp", num_images=2, seed=0),
                   pipe.fuse("amusement", "fear", weight=0.7, num_images=2, seed=0),
                   pipe.neutral("lamp", num_images=1, seed=0)):
        assert all(isinstance(im, Image.Image) and im.size == (32, 32) for im in images)


def test_same_seed_same_pixels_and_per_image_seeds(pipe):
    a = pipe.generate("awe", num_images=2, seed=3)
    b = pipe.generate("awe", num_images=2, seed=3)
    assert np.array_equal(pixels(a), pixels(b))
    c = pipe.generate("awe", num_images=1, seed=4)
    # image 1 of the batch is the image of seed 4 alone (a batched matmul may round differently: 1 grey level)
    assert np.abs(pixels(a[1:]).astype(int) - pixels(c).astype(int)).max() <= 1
    d = pipe.generate("awe", num_images=1, seed=99)
    assert not np.array_equal(pixels(a[:1]), pixels(d))


def test_fuse_weight_one_is_the_first_emotion(pipe):
    assert torch.equal(pipe.fuse_condition("awe", "fear", 1.0, 2, seed=5), pipe.condition("awe", 2, seed=5))
    assert torch.equal(pipe.fuse_condition("awe", "fear", 0.0, 1, seed=5), pipe.condition("fear", 1, seed=5 + 1_000_003))
    mid = pipe.fuse_condition("awe", "fear", 0.25, 1, seed=5)
    expected = 0.25 * pipe.condition("awe", 1, seed=5) + 0.75 * pipe.condition("fear", 1, seed=5 + 1_000_003)
    assert torch.allclose(mid, expected)
    assert np.array_equal(pixels(pipe.fuse("awe", "fear", weight=1.0, seed=5)), pixels(pipe.generate("awe", seed=5)))


def test_noun_guidance_equal_to_guidance_is_the_stock_pipeline(pipe):
    """Composable guidance with g_n = g reduces to the stock pipeline's ε(∅) + g·(ε(c, noun) − ε(∅)): our loop
    (three UNet branches) gives the stock pipeline's images up to float rounding; another g_n changes them."""
    c = pipe.condition("fear", 2, seed=0)
    settings = pipe._settings(2, 3, 5.0, None)
    stock = pixels(pipe._render(pipe.prompt_embeds(c, "lamp"), 0, settings, None)).astype(int)
    composed = pixels(pipe._render_composed(pipe.prompt_embeds(c), pipe.prompt_embeds(c, "lamp"), 5.0, 0, settings,
                                            None)).astype(int)
    assert np.abs(stock - composed).max() <= 2
    # through transfer: g_n = g takes the stock path; a different g_n the composed one, with other pixels
    same = pixels(pipe.transfer("fear", "lamp", num_images=2, num_inference_steps=3, guidance_scale=5.0,
                                noun_guidance_scale=5.0)).astype(int)
    assert np.array_equal(same, stock)
    steps = []
    louder = pixels(pipe.transfer("fear", "lamp", num_images=2, num_inference_steps=3, guidance_scale=5.0,
                                  noun_guidance_scale=15.0, callback=lambda i, n: steps.append((i, n))))
    assert steps == [(1, 3), (2, 3), (3, 3)]
    assert np.abs(louder.astype(int) - stock).max() > 10
    # a model folder's recommendation is the default
    pipe.defaults["noun_guidance_scale"] = 15.0
    try:
        again = pixels(pipe.transfer("fear", "lamp", num_images=2, num_inference_steps=3, guidance_scale=5.0))
    finally:
        del pipe.defaults["noun_guidance_scale"]
    assert np.array_equal(again, louder)


def test_transfer_guidance_defaults_to_the_folders_transfer_recommendation(pipe):
    """With ``transfer_guidance_scale`` in the folder's sampler, transfer's g defaults to it (generate keeps
    ``guidance_scale``); without it, to ``guidance_scale``."""
    kwargs = {"num_images": 1, "num_inference_steps": 3}
    at = {g: pixels(pipe.transfer("fear", "lamp", guidance_scale=g, **kwargs)) for g in (3.0, 7.5)}
    assert not np.array_equal(at[3.0], at[7.5])
    assert pipe.defaults["guidance_scale"] == 7.5 and "transfer_guidance_scale" not in pipe.defaults
    assert np.array_equal(pixels(pipe.transfer("fear", "lamp", **kwargs)), at[7.5])
    assert pipe.transfer_guidance_scale == 7.5
    pipe.defaults["transfer_guidance_scale"] = 3.0
    try:
        assert pipe.transfer_guidance_scale == 3.0
        assert np.array_equal(pixels(pipe.transfer("fear", "lamp", **kwargs)), at[3.0])
        generated = pixels(pipe.generate("fear", **kwargs))
    finally:
        del pipe.defaults["transfer_guidance_scale"]
    assert np.array_equal(generated, pixels(pipe.generate("fear", guidance_scale=7.5, **kwargs)))


def test_conditions_differ_between_emotions(pipe):
    assert not torch.allclose(pipe.condition("awe", 1, seed=0), pipe.condition("fear", 1, seed=0))


@pytest.mark.parametrize("call, message", [
    (lambda p: p.generate("joyful"), "amusement, awe"),
    (lambda p: p.transfer("grief", "lamp"), "choose one of"),
    (lambda p: p.fuse("awe", "fear", weight=1.5), r"\[0, 1\]"),
    (lambda p: p.fuse("awe", "fear", weight=-0.1), r"\[0, 1\]"),
    (lambda p: p.generate("awe", num_images=0), "num_images"),
    (lambda p: p.generate("awe", num_inference_steps=0), "num_inference_steps"),
    (lambda p: p.generate("awe", guidance_scale=99.0), "guidance_scale"),
    (lambda p: p.transfer("awe", "   "), "noun is empty"),
    (lambda p: p.transfer("awe", "x" * 10_000), "at most"),
    (lambda p: p.set_scheduler("magic"), "unipc"),
    (lambda p: p.transfer("awe", "cup", noun_guidance_scale=-1.0), "noun_guidance_scale"),
    (lambda p: p.transfer("awe", "cup", noun_guidance_scale="high"), "noun_guidance_scale"),
])
def test_bad_arguments_say_what_is_allowed(pipe, call, message):
    with pytest.raises(ValueError, match=message):
        call(pipe)


def test_classify(pipe, learnable_emoset):
    image = Image.open(next((learnable_emoset / "image" / "awe").iterdir()))
    pred = pipe.classify(image)
    assert set(pred.probs) == set(EMOTIONS) and abs(sum(pred.probs.values()) - 1) < 1e-5
    assert pred.label == max(pred.probs, key=pred.probs.get)
    assert pred.scene_attention.shape == (4, 4) and pred.scene_attention.max() == pytest.approx(1.0)
    assert pred.object_attention.min() >= 0
    assert pred.scene_attributes and pred.scene_attributes[0][0] in {"sky", "sea", "forest", "room"}
    # odd modes are converted, arrays and paths accepted
    for variant in (image.convert("RGBA"), image.convert("L"), image.convert("P"), np.asarray(image)):
        assert pipe.classify(variant).probs.keys() == pred.probs.keys()


def test_classify_rejects_unreadable_input(pipe, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="bad.jpg"):
        pipe.classify(bad)
    with pytest.raises(ValueError, match="uint8"):
        pipe.classify(np.zeros((4, 4), dtype=np.float32))


def test_save_load_round_trip_same_pixels(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "copy")
    again = UniEmoPipeline.from_pretrained(tmp_path / "copy")
    again.defaults.update(num_inference_steps=2)
    assert np.array_equal(pixels(pipe.generate("sadness", seed=1)), pixels(again.generate("sadness", seed=1)))
    assert np.array_equal(pixels(pipe.transfer("awe", "cup", seed=2)), pixels(again.transfer("awe", "cup", seed=2)))


def test_transfer_nouns_come_from_the_folder_else_the_neutral_objects(tiny_model_dir, tmp_path):
    """A folder may list the objects its SD can draw (UniEmo-Tiny: its 16); they survive save/load, and the
    empty-noun error names them. Without the key, EmoGen's neutral objects."""
    import shutil

    from uniemo.constants import NEUTRAL_NOUNS

    assert UniEmoPipeline.from_pretrained(tiny_model_dir).transfer_nouns == NEUTRAL_NOUNS
    listed = tmp_path / "listed"
    shutil.copytree(tiny_model_dir, listed)
    info = json.loads((listed / "uniemo.json").read_text())
    (listed / "uniemo.json").write_text(json.dumps({**info, "transfer_nouns": ["kite", "drum"]}))
    pipe = UniEmoPipeline.from_pretrained(listed)
    assert pipe.transfer_nouns == ("kite", "drum")
    with pytest.raises(ValueError, match="kite, drum"):
        pipe.transfer("awe", "  ")
    pipe.save_pretrained(tmp_path / "copy")
    assert UniEmoPipeline.from_pretrained(tmp_path / "copy").transfer_nouns == ("kite", "drum")


def test_loading_errors(tmp_path, tiny_model_dir):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        UniEmoPipeline.from_pretrained(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="uniemo.json"):
        UniEmoPipeline.from_pretrained(tmp_path / "empty")
    import shutil

    newer = tmp_path / "newer"
    shutil.copytree(tiny_model_dir, newer)
    info = json.loads((newer / "uniemo.json").read_text())
    (newer / "uniemo.json").write_text(json.dumps({**info, "format_version": 99}))
    with pytest.raises(ValueError, match="newer"):
        UniEmoPipeline.from_pretrained(newer)
    (newer / "uniemo.json").write_text(json.dumps({**info, "components": ["classifier"]}))
    with pytest.raises(ValueError, match="lacks component"):
        UniEmoPipeline.from_pretrained(newer)


def test_uses_the_stock_diffusers_pipeline(pipe):
    from diffusers import StableDiffusionPipeline, UniPCMultistepScheduler

    assert type(pipe.sd) is StableDiffusionPipeline
    assert isinstance(pipe.sd.scheduler, UniPCMultistepScheduler)


def test_classify_sees_a_rotated_phone_photo_upright(pipe, tmp_path):
    from pathlib import Path

    from PIL import Image

    example = Path(__file__).resolve().parents[1] / "assets" / "examples" / "awe_sky_sun.png"
    upright = Image.open(example).convert("RGB").crop((0, 0, 64, 48))
    # stored sideways with EXIF orientation 6 ("rotate 90° clockwise to display"), as a phone writes it
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.png"  # lossless, so the comparison is exact
    stored.save(path, exif=exif)
    seen = pipe.classify(str(path)).probs
    assert seen == pytest.approx(pipe.classify(np.asarray(upright)).probs, abs=1e-6)
    assert seen != pytest.approx(pipe.classify(np.asarray(stored)).probs, abs=1e-6)
