"""What the demo opens and what it shows about the server.

The page's events skip gradio's preprocessing, so a request can name any path on the server in place of an
upload. ``handlers.check_uploaded`` lets through only files in the allowed folders (gradio's upload folder, the
bundled examples), after resolving symlinks and ``..``; everything else gets one message that says nothing
about the file. The page names the model by folder name or Hub repo id, never by a path on the server.
"""

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from demo import handlers
from uniemo import UniEmoPipeline

EXAMPLE = min(handlers.EXAMPLES_DIR.glob("*.png"))


@pytest.fixture(scope="module")
def pipe(tiny_model_dir):
    return UniEmoPipeline.from_pretrained(tiny_model_dir)


@pytest.fixture
def places(tmp_path):
    """An upload folder with an image in it, and beside it a folder of server files the page must not open."""
    uploads, outside = tmp_path / "uploads", tmp_path / "server"
    uploads.mkdir()
    outside.mkdir()
    Image.open(EXAMPLE).save(uploads / "upload.png")
    Image.open(EXAMPLE).save(outside / "private.png")
    (outside / "notes.txt").write_text("not an image, and private")
    return SimpleNamespace(uploads=uploads, outside=outside, folders=(uploads, handlers.EXAMPLES_DIR))


# ----------------------------------------------------------------------------------------- the check


def test_uploads_and_examples_are_allowed(places):
    assert handlers.check_uploaded(places.uploads / "upload.png", places.folders) == places.uploads / "upload.png"
    assert handlers.check_uploaded(str(EXAMPLE), places.folders) == EXAMPLE
    # the folder reached through a link (as /tmp is on some systems) is the same folder
    link = places.uploads.parent / "linked-uploads"
    link.symlink_to(places.uploads, target_is_directory=True)
    assert handlers.check_uploaded(link / "upload.png", places.folders) == places.uploads / "upload.png"
    assert handlers.check_uploaded(places.uploads / "upload.png", [link]) == places.uploads / "upload.png"


def refused(path, folders) -> None:
    with pytest.raises(ValueError) as info:
        handlers.check_uploaded(path, folders)
    assert str(info.value) == handlers.NOT_UPLOADED


def test_everything_else_is_refused_alike(places):
    for path in (places.outside / "private.png", places.outside / "notes.txt", places.outside / "missing.png",
                 "/etc/hostname", "/", "", "relative/elsewhere.png", "a\0b.png"):
        refused(path, places.folders)


def test_dot_dot_and_symlinks_cannot_leave_the_folders(places):
    refused(places.uploads / ".." / "server" / "private.png", places.folders)
    refused(f"{handlers.EXAMPLES_DIR}/../uniemo_tiny.png", places.folders)
    refused(f"{handlers.EXAMPLES_DIR}/../../README.md", places.folders)
    # a link inside the upload folder pointing out of it (to a file, to a folder)
    (places.uploads / "innocent.png").symlink_to(places.outside / "private.png")
    refused(places.uploads / "innocent.png", places.folders)
    (places.uploads / "door").symlink_to(places.outside, target_is_directory=True)
    refused(places.uploads / "door" / "private.png", places.folders)
    # a folder whose name only starts like the upload folder's
    twin = places.uploads.parent / (places.uploads.name + "-twin")
    twin.mkdir()
    Image.open(EXAMPLE).save(twin / "x.png")
    refused(twin / "x.png", places.folders)


def test_classify_refuses_every_outside_path_with_one_message(pipe, places):
    messages = set()
    for path in (places.outside / "private.png", places.outside / "notes.txt", places.outside / "missing.png"):
        with pytest.raises(ValueError) as info:
            handlers.classify_image(pipe, path, folders=places.folders)
        messages.add(str(info.value))
    assert messages == {handlers.NOT_UPLOADED}
    # nothing in it about the file: not its name, existence, size or kind
    assert not any(word in handlers.NOT_UPLOADED for word in ("private", "notes", "exist", "MB", "empty"))


def test_inside_the_folders_bad_files_keep_their_own_messages(pipe, places):
    (places.uploads / "notes.png").write_text("text with an image's name")
    with pytest.raises(ValueError, match="not an image file"):
        handlers.classify_image(pipe, places.uploads / "notes.png", folders=places.folders)
    with pytest.raises(ValueError, match="does not exist"):
        handlers.classify_image(pipe, places.uploads / "gone.png", folders=places.folders)
    (places.uploads / "loop.png").symlink_to(places.uploads / "loop.png")  # a link to itself: no hang
    with pytest.raises(ValueError, match="does not exist"):
        handlers.classify_image(pipe, places.uploads / "loop.png", folders=places.folders)
    result = handlers.classify_image(pipe, places.uploads / "upload.png", folders=places.folders)
    assert sum(result.probs.values()) == pytest.approx(1.0, abs=1e-5)


def test_the_pages_classify_event_opens_only_gradios_upload_folder_and_the_examples(pipe, places, monkeypatch):
    """The event bound to /classify, given raw FileData dicts (it skips preprocessing), uses gradio's upload
    folder (GRADIO_TEMP_DIR here) and the examples, and nothing else."""
    import gradio as gr

    from demo.ui import build_demo

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(places.uploads))
    monkeypatch.setenv("GRADIO_EXAMPLES_CACHE", str(places.uploads.parent / "examples_cache"))
    page = build_demo(pipe)
    classify = next(fn for fn in page.fns.values() if fn.api_name == "classify")
    assert classify.preprocess is False
    for allowed in (places.uploads / "upload.png", EXAMPLE):
        probs = classify.fn({"path": str(allowed)})[0]
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
    for path in (places.outside / "private.png", places.outside / "notes.txt", places.outside / "missing.png"):
        for value in ({"path": str(path)}, str(path)):
            with pytest.raises(gr.Error) as info:
                classify.fn(value)
            assert info.value.message == handlers.NOT_UPLOADED


# ------------------------------------------------------------------------------------ names, not paths


@pytest.mark.parametrize("info, name", [
    ({"path": "/srv/models/uniemo-tiny"}, "uniemo-tiny"),
    ({"path": "/home/me/.cache/huggingface/hub/models--someone--uniemo-vit-l/snapshots/0a1b2c"},
     "someone/uniemo-vit-l"),
    ({"path": "/data/runs/joint-sd15/final"}, "joint-sd15/final"),
    ({"path": "/data/runs/joint-sd15/checkpoint-4000"}, "joint-sd15/checkpoint-4000"),
    ({"path": "/data/model", "name": "/data/secret/place/nice-name"}, "nice-name"),
    ({}, "unnamed model"),
], ids=["folder", "hub", "final", "checkpoint", "recorded-name", "none"])
def test_model_name_is_a_folder_name_or_a_hub_id(info, name):
    assert handlers.model_name(SimpleNamespace(info=info)) == name


def test_absolute_paths_in_recorded_text_are_cut_to_their_last_part():
    assert handlers.without_paths("/home/me/sd-1.5") == "sd-1.5"
    assert handlers.without_paths("clip/ (tiny CLIP from ~/work/clip-tiny)") == "clip/ (tiny CLIP from clip-tiny)"
    assert handlers.without_paths(r"C:\models\sd") == "sd"
    for kept in ("runwayml/stable-diffusion-v1-5", "diffusion/", "train/tiny_world.py", "a / b",
                 "see https://arxiv.org/abs/2507.23372"):
        assert handlers.without_paths(kept) == kept


def test_about_never_shows_a_path_the_model_folder_records(pipe, monkeypatch, tmp_path):
    monkeypatch.setitem(pipe.info, "diffusion", "/data/secret/stable-diffusion-v1-5")
    monkeypatch.setitem(pipe.info, "base_models", {"clip": "/home/someone/clip-vit-l-14 (OpenAI CLIP)"})
    about = handlers.about_markdown(pipe)
    assert "/data/secret" not in about and "/home/someone" not in about
    assert "stable-diffusion-v1-5" in about and "clip-vit-l-14 (OpenAI CLIP)" in about
    assert str(Path(pipe.info["path"]).parent) not in about


def test_a_reports_location_is_shown_without_the_servers_path(tmp_path):
    report = tmp_path / "my-model" / "report.json"
    report.parent.mkdir()
    report.write_text('{"top1": 0.5}')
    table = handlers.report_markdown(report)
    assert "`my-model/report.json`" in table and str(tmp_path) not in table
    report.write_text("{not json")
    assert str(tmp_path) not in handlers.report_markdown(report)
    os.chmod(report, 0)
    try:
        assert str(tmp_path) not in handlers.report_markdown(report)
    finally:
        os.chmod(report, 0o600)
    bundled = handlers.ASSETS_DIR / "uniemo-tiny" / "report.json"
    if bundled.is_file():
        assert "`assets/uniemo-tiny/report.json`" in handlers.report_markdown(bundled)
