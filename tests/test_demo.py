"""Demo handlers called directly (no server), the attention overlay, the page's construction and app.py.

Every bad input the page or the API can send gets its own test: the handler must raise ``ValueError`` whose
message says what is wrong (the UI turns it into ``gr.Error``).
"""

import math
import struct
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from demo import handlers
from uniemo import EMOTIONS, UniEmoPipeline
from uniemo.viz import attention_overlay, upsample_attention

EXAMPLES = Path(__file__).resolve().parents[1] / "assets" / "examples"
STEPS = 2  # enough for the tiny model to run the whole sampler; keeps each call well under a second


@pytest.fixture(scope="module")
def pipe(tiny_model_dir):
    return UniEmoPipeline.from_pretrained(tiny_model_dir)


@pytest.fixture
def example_image():
    return min(EXAMPLES.glob("*.png"))


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width x height pixels but carries almost no data: a decompression bomb
    (a few dozen bytes) that must be refused from its header alone."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0"))
                     + chunk(b"IEND", b""))
    return path


def noisy(size=(48, 40), seed=0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


# ------------------------------------------------------------------------------------------- overlay


def test_overlay_is_an_rgb_image_of_the_requested_size():
    image = noisy((40, 30))
    out = attention_overlay(image, np.random.default_rng(0).random((4, 4)), size=(64, 48))
    assert isinstance(out, Image.Image) and out.mode == "RGB" and out.size == (64, 48)
    assert attention_overlay(image, np.ones((4, 4))).size == (40, 30)  # None keeps the image size
    assert attention_overlay(image.convert("L"), np.ones((2, 2)), size=10).size == (10, 10)


def test_overlay_colours_the_attended_patch_with_the_colormap_top():
    import matplotlib

    image = Image.new("RGB", (64, 64), (128, 128, 128))
    attention = np.zeros((4, 4))
    attention[0, 3] = 1.0  # top-right patch
    heat = np.asarray(attention_overlay(image, attention, cmap="jet", alpha=1.0), dtype=float)
    top = np.array(matplotlib.colormaps["jet"](1.0)[:3]) * 255
    bottom = np.array(matplotlib.colormaps["jet"](0.0)[:3]) * 255
    assert np.allclose(heat[8, 56], top, atol=40)  # centre of the hot patch (row 0, column 3)
    assert np.allclose(heat[56, 8], bottom, atol=2)  # far corner: the colormap's bottom
    # bilinear upsampling: the heat falls off smoothly, no hard 16-px block edge
    ramp = upsample_attention(attention, (64, 64))[8, 32:64]
    assert np.all(np.diff(ramp[:24]) >= -1e-6) and 0.1 < ramp[10] < 0.9


def test_overlay_alpha_blends_image_and_heat_map():
    image = noisy((32, 32))
    attention = np.random.default_rng(1).random((4, 4))
    assert np.array_equal(np.asarray(attention_overlay(image, attention, alpha=0.0)), np.asarray(image))
    half = np.asarray(attention_overlay(image, attention, alpha=0.5), dtype=float)
    full = np.asarray(attention_overlay(image, attention, alpha=1.0), dtype=float)
    assert np.allclose(half, 0.5 * np.asarray(image, dtype=float) + 0.5 * full, atol=1.01)


def test_overlay_constant_map_is_uniform_and_bad_arguments_raise():
    out = np.asarray(attention_overlay(Image.new("RGB", (16, 16), "white"), np.full((3, 3), 0.7), alpha=1.0))
    assert (out == out[0, 0]).all()
    image = noisy()
    for kwargs, message in [({"cmap": "no-such-map"}, "colormap"), ({"alpha": 1.5}, "alpha"),
                            ({"alpha": True}, "alpha"), ({"size": 0}, "size")]:
        with pytest.raises(ValueError, match=message):
            attention_overlay(image, np.ones((2, 2)), **kwargs)
    with pytest.raises(ValueError, match="2-D"):
        attention_overlay(image, np.ones(4))
    with pytest.raises(ValueError, match="NaN"):
        attention_overlay(image, np.array([[0.0, math.nan], [0.0, 1.0]]))


# ------------------------------------------------------------------------------------------ classify


def test_classify_image_returns_probabilities_overlays_and_attributes(pipe, example_image):
    result = handlers.classify_image(pipe, str(example_image))
    assert list(result.probs) == list(EMOTIONS)
    assert all(isinstance(v, float) for v in result.probs.values())
    assert sum(result.probs.values()) == pytest.approx(1.0, abs=1e-5)
    for overlay in (result.scene_overlay, result.object_overlay):
        assert isinstance(overlay, Image.Image) and overlay.mode == "RGB"
        assert min(overlay.size) >= handlers.DISPLAY_SIDE
    assert not np.array_equal(np.asarray(result.scene_overlay), np.asarray(result.object_overlay))
    kinds = [row[0] for row in result.attributes]
    assert kinds == ["scene"] * 3 + ["object"] * 3
    assert all(isinstance(name, str) and isinstance(sim, float) for _, name, sim in result.attributes)


def test_classify_image_takes_a_path_or_a_pil_image_alike(pipe, example_image):
    by_path = handlers.classify_image(pipe, example_image)
    by_image = handlers.classify_image(pipe, Image.open(example_image))
    assert by_path.probs == pytest.approx(by_image.probs)


def _rgba(path):
    image = noisy().convert("RGBA")
    image.putalpha(Image.new("L", image.size, 90))
    image.save(path.with_suffix(".png"))
    return path.with_suffix(".png")


def _palette(path):
    noisy().convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(path.with_suffix(".png"))
    return path.with_suffix(".png")


def _grey(path):
    noisy().convert("L").save(path.with_suffix(".png"))
    return path.with_suffix(".png")


def _cmyk(path):
    noisy().convert("CMYK").save(path.with_suffix(".jpg"))
    return path.with_suffix(".jpg")


def _sixteen_bit(path):
    Image.fromarray(np.random.default_rng(0).integers(0, 65535, (40, 48), dtype=np.uint16)).save(
        path.with_suffix(".png"))
    return path.with_suffix(".png")


@pytest.mark.parametrize("write", [_rgba, _palette, _grey, _cmyk, _sixteen_bit],
                         ids=["rgba", "palette", "greyscale", "cmyk", "16-bit"])
def test_every_image_mode_is_classified(pipe, tmp_path, write):
    path = write(tmp_path / "image")
    mode = Image.open(path).mode
    assert mode != "RGB"
    image = handlers.read_image(path)
    assert image.mode == "RGB" and image.size == (48, 40)
    assert sum(handlers.classify_image(pipe, path).probs.values()) == pytest.approx(1.0, abs=1e-5)


def test_animated_gif_uses_its_first_frame(pipe, tmp_path):
    red, blue = Image.new("RGB", (32, 32), (255, 0, 0)), Image.new("RGB", (32, 32), (0, 0, 255))
    path = tmp_path / "anim.gif"
    red.save(path, save_all=True, append_images=[blue], duration=100, loop=0)
    assert Image.open(path).n_frames == 2
    first = np.asarray(handlers.read_image(path))
    assert first[..., 0].mean() > 200 and first[..., 2].mean() < 50
    handlers.classify_image(pipe, path)


def test_large_image_is_downscaled_not_refused(pipe, tmp_path):
    path = tmp_path / "large.png"
    Image.new("RGB", (3000, 2000), (10, 120, 200)).save(path)
    image = handlers.read_image(path)
    assert max(image.size) == handlers.MAX_WORKING_SIDE and image.size[0] > image.size[1]
    result = handlers.classify_image(pipe, path)
    assert result.scene_overlay.size == (handlers.MAX_OVERLAY_SIDE, handlers.MAX_OVERLAY_SIDE)


def test_pil_limit_is_set_against_decompression_bombs():
    assert Image.MAX_IMAGE_PIXELS == handlers.MAX_INPUT_PIXELS


@pytest.mark.parametrize("width, height", [(7000, 7000), (30000, 30000)], ids=["over-limit", "over-twice-limit"])
def test_decompression_bomb_is_refused_from_its_header(pipe, tmp_path, width, height):
    path = png_header_only(tmp_path / "bomb.png", width, height)
    assert path.stat().st_size < 200
    with pytest.raises(ValueError, match="megapixels are accepted"):
        handlers.classify_image(pipe, path)


def test_non_image_file_is_refused(pipe, tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is a text file with an image's name\n")
    with pytest.raises(ValueError, match="not an image file"):
        handlers.classify_image(pipe, path)


def test_truncated_jpeg_is_refused(pipe, tmp_path):
    path = tmp_path / "cut.jpg"
    noisy((64, 64)).save(path, quality=95)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        handlers.classify_image(pipe, path)


def test_one_pixel_image_is_refused(pipe, tmp_path):
    path = tmp_path / "dot.png"
    Image.new("RGB", (1, 1), "red").save(path)
    with pytest.raises(ValueError, match=r"1x1 pixels.*at least 16"):
        handlers.classify_image(pipe, path)
    with pytest.raises(ValueError, match="at least 16"):
        handlers.classify_image(pipe, Image.new("RGB", (1, 1)))


def test_empty_missing_and_absent_images_are_refused(pipe, tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty file"):
        handlers.classify_image(pipe, empty)
    with pytest.raises(ValueError, match="does not exist"):
        handlers.classify_image(pipe, tmp_path / "missing.png")
    for nothing in (None, ""):
        with pytest.raises(ValueError, match="no image"):
            handlers.classify_image(pipe, nothing)
    with pytest.raises(ValueError, match="expected an image file path"):
        handlers.classify_image(pipe, 42)


def test_oversized_file_is_refused(pipe, tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    noisy((64, 64)).save(path)
    monkeypatch.setattr(handlers, "MAX_INPUT_BYTES", path.stat().st_size - 1)
    with pytest.raises(ValueError, match="MB"):
        handlers.classify_image(pipe, path)


# ---------------------------------------------------------------------------------------- generation


def test_generate_images_returns_captioned_enlarged_images(pipe):
    calls = []
    gallery = handlers.generate_images(pipe, "awe", num_images=2, seed=3, steps=STEPS, guidance=7.5,
                                       progress=lambda done, total: calls.append((done, total)))
    assert [caption for _, caption in gallery] == ["awe · seed 3", "awe · seed 4"]
    native = pipe.generate("awe", num_images=2, seed=3, num_inference_steps=STEPS, guidance_scale=7.5)
    for (shown, _), original in zip(gallery, native, strict=True):
        assert isinstance(shown, Image.Image) and min(shown.size) >= handlers.DISPLAY_SIDE
        factor = shown.width // original.width
        # nearest-neighbour enlargement: every factor-th pixel is the original image, exactly
        assert np.array_equal(np.asarray(shown)[::factor, ::factor], np.asarray(original))
    assert calls == [(1, STEPS), (2, STEPS)]


def test_emotion_names_are_forgiving_about_case_and_spaces(pipe):
    assert handlers.check_emotion(pipe, "  AWE ") == "awe"


def test_transfer_gives_the_same_seeds_neutral_rendering_beside_it(pipe):
    calls = []
    transferred, neutral = handlers.transfer_images(pipe, "fear", "  lamp ", num_images=2, seed=5, steps=STEPS,
                                                    progress=lambda d, t: calls.append((d, t)))
    assert len(transferred) == len(neutral) == 2
    assert transferred[0][1] == "fear lamp · seed 5" and neutral[1][1] == "lamp (neutral) · seed 6"
    plain = pipe.neutral("lamp", num_images=2, seed=5, num_inference_steps=STEPS)
    assert np.array_equal(np.asarray(neutral[0][0]), np.asarray(handlers.for_display(plain[0])))
    assert calls[-1] == (2 * STEPS, 2 * STEPS) and calls == sorted(calls)


def test_transfer_tab_uses_the_models_transfer_guidance(pipe):
    """The Transfer tab's guidance starts at the folder's ``transfer_guidance_scale`` (else ``guidance_scale``),
    and a missing guidance is that value, for the transfer and for its neutral partner alike."""
    assert handlers.default_settings(pipe)["transfer_guidance_scale"] == pipe.defaults["guidance_scale"]
    pipe.defaults["transfer_guidance_scale"] = 3.0
    try:
        assert handlers.default_settings(pipe)["transfer_guidance_scale"] == 3.0
        transferred, neutral = handlers.transfer_images(pipe, "fear", "lamp", steps=STEPS)
    finally:
        del pipe.defaults["transfer_guidance_scale"]
    explicit = handlers.transfer_images(pipe, "fear", "lamp", steps=STEPS, guidance=3.0)
    assert np.array_equal(np.asarray(transferred[0][0]), np.asarray(explicit[0][0][0]))
    assert np.array_equal(np.asarray(neutral[0][0]), np.asarray(explicit[1][0][0]))
    assert not np.array_equal(np.asarray(neutral[0][0]),
                              np.asarray(handlers.transfer_images(pipe, "fear", "lamp", steps=STEPS)[1][0][0]))


def test_transfer_accepts_free_text_nouns(pipe):
    transferred, _ = handlers.transfer_images(pipe, "awe", "a red umbrella", steps=STEPS)
    assert transferred[0][1].startswith("awe a red umbrella")


def test_fuse_with_and_without_the_weight_sweep(pipe):
    fused, strip = handlers.fuse_images(pipe, "amusement", "fear", 0.7, num_images=1, seed=0, steps=STEPS)
    assert len(fused) == 1 and strip == [] and fused[0][1].startswith("0.70·amusement + 0.30·fear")
    calls = []
    fused, strip = handlers.fuse_images(pipe, "amusement", "fear", 0.7, steps=STEPS, sweep=True,
                                        progress=lambda d, t: calls.append((d, t)))
    assert [caption for _, caption in strip] == ["w = 0.00", "w = 0.25", "w = 0.50", "w = 0.75", "w = 1.00"]
    assert calls[-1] == (6 * STEPS, 6 * STEPS)
    # w = 1 is emotion A alone: the sweep's last image equals plain generation with the same seed
    alone = pipe.generate("amusement", seed=0, num_inference_steps=STEPS)[0]
    assert np.array_equal(np.asarray(strip[-1][0]), np.asarray(handlers.for_display(alone)))


@pytest.mark.parametrize("call, message", [
    (lambda p: handlers.generate_images(p, "joy", steps=STEPS), "unknown emotion 'joy'; choose one of amusement"),
    (lambda p: handlers.generate_images(p, None, steps=STEPS), "unknown emotion None"),
    (lambda p: handlers.transfer_images(p, "grief", "lamp", steps=STEPS), "choose one of"),
    (lambda p: handlers.fuse_images(p, "awe", "rage", 0.5, steps=STEPS), "unknown emotion 'rage'"),
], ids=["generate", "generate-none", "transfer", "fuse"])
def test_unknown_emotion(pipe, call, message):
    with pytest.raises(ValueError, match=message):
        call(pipe)


@pytest.mark.parametrize("noun, message", [
    ("", "noun is empty"), ("   \n\t", "noun is empty"), (None, "noun is empty"),
    ("x" * 10_000, "10,000 characters long; at most 200"), (123, "must be text"),
], ids=["empty", "whitespace", "none", "10000-chars", "number"])
def test_bad_noun(pipe, noun, message):
    with pytest.raises(ValueError, match=message):
        handlers.transfer_images(pipe, "fear", noun, steps=STEPS)


@pytest.mark.parametrize("kwargs, message", [
    ({"steps": 0}, "number of steps must be from 1 to 200, got 0"),
    ({"steps": 10_000}, "number of steps must be from 1 to 200"),
    ({"steps": 2.5}, "number of steps must be a whole number"),
    ({"guidance": -1.0}, "guidance scale must be from 0 to 30"),
    ({"guidance": 31}, "guidance scale must be from 0 to 30"),
    ({"guidance": math.nan}, "guidance scale must be a number"),
    ({"num_images": 0}, "number of images must be from 1 to 8"),
    ({"num_images": 9}, "number of images must be from 1 to 8"),
    ({"num_images": True}, "number of images must be a whole number"),
    ({"num_images": "2"}, "number of images must be a whole number"),
    ({"seed": -1}, "seed must be from 0"),
    ({"seed": 2**31}, "seed must be from 0 to 2147483647"),
], ids=lambda v: str(v)[:30])
def test_out_of_range_sampling_settings(pipe, kwargs, message):
    settings = {"num_images": 1, "seed": 0, "steps": STEPS, "guidance": 7.5, **kwargs}
    for call in (lambda: handlers.generate_images(pipe, "awe", **settings),
                 lambda: handlers.transfer_images(pipe, "awe", "cup", **settings),
                 lambda: handlers.fuse_images(pipe, "awe", "fear", 0.5, **settings)):
        with pytest.raises(ValueError, match=message):
            call()


def test_integral_floats_from_json_clients_are_accepted(pipe):
    gallery = handlers.generate_images(pipe, "awe", num_images=1.0, seed=2.0, steps=float(STEPS), guidance=7)
    assert gallery[0][1] == "awe · seed 2"


@pytest.mark.parametrize("weight", [-0.1, 1.5, math.nan, math.inf, "0.5", None])
def test_out_of_range_weight(pipe, weight):
    with pytest.raises(ValueError, match=r"weight must be"):
        handlers.fuse_images(pipe, "awe", "fear", weight, steps=STEPS)


def test_sweep_flag_must_be_boolean(pipe):
    with pytest.raises(ValueError, match="sweep must be true or false"):
        handlers.fuse_images(pipe, "awe", "fear", 0.5, steps=STEPS, sweep="yes")


# ---------------------------------------------------------------------------- limits, model, About


def test_tiny_model_is_not_capped(pipe):
    limits = handlers.demo_limits(pipe)
    assert not limits.capped and limits.notice == "" and limits.size == pipe.resolution
    assert limits.max_steps == 200


def test_full_size_model_on_cpu_is_capped_and_says_so():
    cpu = SimpleNamespace(device=torch.device("cpu"), resolution=512)
    limits = handlers.demo_limits(cpu)
    assert limits.capped and limits.size == 256 and limits.max_steps == handlers.CPU_MAX_STEPS
    assert "CPU" in limits.notice and "256" in limits.notice and "512" in limits.notice
    gpu = SimpleNamespace(device=torch.device("cuda"), resolution=512)
    assert not handlers.demo_limits(gpu).capped and handlers.demo_limits(gpu).size == 512


def test_capped_steps_are_enforced(pipe, monkeypatch):
    capped = handlers.DemoLimits(max_images=2, max_steps=3, size=pipe.resolution, capped=True, notice="capped")
    monkeypatch.setattr(handlers, "demo_limits", lambda p: capped)
    with pytest.raises(ValueError, match="number of steps must be from 1 to 3"):
        handlers.generate_images(pipe, "awe", steps=4)
    with pytest.raises(ValueError, match="number of images must be from 1 to 2"):
        handlers.generate_images(pipe, "awe", num_images=3, steps=2)


def test_model_summary_names_the_loaded_model_not_its_path(pipe, tiny_model_dir):
    line = handlers.model_summary(pipe)
    # a training run's final/ folder is named with its run, and the server's path is never shown
    assert f"{tiny_model_dir.parent.name}/{tiny_model_dir.name}" in line and "8 emotions" in line
    assert str(tiny_model_dir.parent) not in line


def test_about_panel_without_a_report_shows_no_numbers(pipe):
    about = handlers.about_markdown(pipe)
    assert "arXiv:2507.23372" in about and "TIP" in about and "UniEmo" in about
    assert ", ".join(EMOTIONS) in about and "Measured numbers from" not in about
    assert not any(ch.isdigit() for ch in handlers.report_markdown(None))


def test_about_panel_lists_the_base_models_the_folder_records(pipe, monkeypatch):
    monkeypatch.setitem(pipe.info, "base_models", {"clip": "clip/ (tiny CLIP)", "diffusion": "diffusion/"})
    about = handlers.about_markdown(pipe)
    assert "- clip: clip/ (tiny CLIP)" in about and "- diffusion: diffusion/" in about


def test_about_panel_shows_a_reports_numbers(tmp_path):
    report = tmp_path / "report.json"
    report.write_text('{"understanding": {"top1": 0.8125, "per_class": [1, 2], "per_emotion": {"awe": 0.5}}, '
                      '"fid": 41.5, "ok": true, "model": "uniemo-tiny"}')
    fake = SimpleNamespace(info={"path": str(tmp_path)})
    assert handlers.find_report(fake) == report
    table = handlers.report_markdown(report)
    assert "| understanding / top1 | 0.8125 |" in table and "| fid | 41.5 |" in table
    # lists, booleans and breakdowns deeper than two keys are not table rows
    assert "per_class" not in table and "ok" not in table and "awe" not in table
    assert handlers.find_report(SimpleNamespace(info={"path": str(tmp_path / "other")})) is None


def test_model_fingerprint_is_stable_and_path_safe(pipe):
    first = handlers.model_fingerprint(pipe)
    assert first == handlers.model_fingerprint(pipe)
    assert "/" not in first and len(first) < 60


# ------------------------------------------------------------------------------------- page and app


def test_build_demo_renders_share_one_slot_and_classify_has_its_own(pipe):
    import gradio as gr

    from demo.ui import build_demo

    page = build_demo(pipe)
    assert isinstance(page, gr.Blocks)
    fns = {fn.api_name: fn for fn in page.fns.values() if fn.api_name in {"classify", "generate", "transfer",
                                                                           "fuse"}}
    assert set(fns) == {"classify", "generate", "transfer", "fuse"}
    renders = [fns[name] for name in ("generate", "transfer", "fuse")]
    assert {fn.concurrency_id for fn in renders} == {"model"} and {fn.concurrency_limit for fn in renders} == {1}
    # classification never waits behind queued renders
    assert fns["classify"].concurrency_id not in {None, "model"}


def test_transfer_tab_offers_the_models_nouns(pipe):
    """The Transfer tab's object list is the model's ``transfer_nouns`` (typing another stays allowed)."""
    from demo.ui import build_demo

    def noun_box(page):
        return next(c["props"] for c in page.config["components"] if c["props"].get("elem_id") == "tr-noun")

    box = noun_box(build_demo(pipe))
    assert [c[0] for c in box["choices"]] == list(pipe.transfer_nouns) and box["value"] == "lamp"
    assert box["allow_custom_value"]
    pipe.info["transfer_nouns"] = ["kite", "drum"]
    try:
        box = noun_box(build_demo(pipe))
        with pytest.raises(ValueError, match="one of kite, drum"):
            handlers.transfer_images(pipe, "fear", " ", steps=STEPS)
    finally:
        del pipe.info["transfer_nouns"]
    assert [c[0] for c in box["choices"]] == ["kite", "drum"] and box["value"] == "kite"


def test_a_capped_machine_says_so_on_the_page(pipe, monkeypatch):
    from demo.ui import build_demo

    capped = handlers.DemoLimits(max_images=2, max_steps=20, size=pipe.resolution, capped=True,
                                 notice="Running on a CPU: generation is capped at 20 steps.")
    monkeypatch.setattr(handlers, "demo_limits", lambda p: capped)
    config = build_demo(pipe).config
    texts = [c["props"].get("value") for c in config["components"] if c["type"] == "markdown"]
    assert any(isinstance(t, str) and "capped at 20 steps" in t for t in texts)
    step_sliders = [c["props"] for c in config["components"]
                    if c["type"] == "slider" and c["props"].get("label") == "Denoising steps"]
    assert len(step_sliders) == 3 and all(props["maximum"] == 20 for props in step_sliders)


def test_images_reach_gradio_as_files_of_their_own(tmp_path):
    from demo.ui import _as_files

    image = Image.new("RGB", (8, 8), "red")
    result = handlers.Understanding({"awe": 1.0}, image, image, [["scene", "sky", 0.5]])
    saved = _as_files(result, str(tmp_path))
    assert isinstance(saved, handlers.Understanding) and saved.probs == {"awe": 1.0}
    assert saved.scene_overlay != saved.object_overlay  # the same image twice still gets two files
    assert Path(saved.scene_overlay).parent == tmp_path and Image.open(saved.scene_overlay).size == (8, 8)
    gallery = _as_files(([(image, "a")], []), str(tmp_path))
    assert gallery[0][0][1] == "a" and Path(gallery[0][0][0]).suffix == ".png" and gallery[1] == []


def test_value_errors_become_messages_on_the_page():
    import gradio as gr

    from demo.ui import _shown_to_user

    with pytest.raises(gr.Error, match="unknown emotion"), _shown_to_user():
        raise ValueError("unknown emotion 'joy'")


def test_app_help_and_missing_model(monkeypatch, tmp_path, capsys):
    import app

    with pytest.raises(SystemExit) as exit_info:
        app.main(["--help"])
    assert exit_info.value.code == 0 and "--model" in capsys.readouterr().out
    monkeypatch.delenv("UNIEMO_MODEL", raising=False)
    monkeypatch.setattr(app, "BUNDLED_MODEL", tmp_path / "uniemo-tiny")
    with pytest.raises(SystemExit, match="bundled UniEmo-Tiny is missing"):
        app.main([])
    with pytest.raises(SystemExit, match="cannot load the model"):
        app.main(["--model", str(tmp_path / "nowhere")])


def test_app_loads_the_model_from_the_environment_and_launches(monkeypatch, tiny_model_dir, tmp_path):
    import gradio as gr

    import app

    launched = {}
    monkeypatch.setenv("UNIEMO_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("GRADIO_EXAMPLES_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kwargs: launched.update(kwargs, page=self))
    app.main(["--device", "cpu"])
    assert launched["max_file_size"] == "10mb" and launched["share"] is False
    assert "server_name" not in launched and "server_port" not in launched  # left to GRADIO_SERVER_* variables
    config = str(launched["page"].config)
    assert f"{tiny_model_dir.parent.name}/{tiny_model_dir.name}" in config  # the model, by name
    assert str(tiny_model_dir.parent) not in config  # never by its path on the server
