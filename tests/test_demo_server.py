"""The demo served for real (gradio queue, uploads, API names) and driven through ``gradio_client``.

One server per module on a free 127.0.0.1 port, launched the way ``app.py`` launches it (same queue and
upload limits), with the tiny model. Bad inputs must come back as errors whose message says what is wrong,
and the server must answer the next request. A request that names a file on the server instead of uploading
one learns nothing about it, and the page never shows where the server keeps the repository or the model.
"""

import json
import os
import socket
import struct
import time
import zlib
from pathlib import Path

import httpx
import pytest
from PIL import Image

pytest.importorskip("gradio")
pytest.importorskip("gradio_client")

from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from demo.uploads import NOT_UPLOADED  # noqa: E402
from uniemo import EMOTIONS, UniEmoPipeline  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = min((ROOT / "assets" / "examples").glob("*.png"))
ENDPOINTS = {"/classify", "/generate", "/transfer", "/fuse"}
STEPS = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    from demo.ui import MAX_FILE_SIZE, QUEUE_MAX_SIZE, build_demo

    with pytest.MonkeyPatch.context() as mp:
        # cached example outputs of this test model stay in the test's own folder
        mp.setenv("GRADIO_EXAMPLES_CACHE", str(tmp_path_factory.mktemp("examples_cache")))
        pipe = UniEmoPipeline.from_pretrained(tiny_model_dir)
        page = build_demo(pipe).queue(max_size=QUEUE_MAX_SIZE, default_concurrency_limit=1)
        _, url, _ = page.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True,
                                quiet=True, max_file_size=MAX_FILE_SIZE)
        try:
            yield url
        finally:
            page.close()


@pytest.fixture(scope="module")
def client(server):
    return Client(server, verbose=False)


def assert_still_serving(client):
    label = client.predict(handle_file(str(EXAMPLE)), api_name="/classify")[0]
    assert {c["label"] for c in label["confidences"]} == set(EMOTIONS)


def test_api_lists_the_four_endpoints(client):
    api = client.view_api(print_info=False, return_format="dict")
    assert set(api["named_endpoints"]) == ENDPOINTS
    params = [p["parameter_name"] for p in api["named_endpoints"]["/fuse"]["parameters"]]
    assert params == ["emotion_a", "emotion_b", "weight", "sweep", "num_images", "seed", "steps", "guidance"]


def test_classify_endpoint(client):
    label, scene, objects, attributes = client.predict(handle_file(str(EXAMPLE)), api_name="/classify")
    assert sum(c["confidence"] for c in label["confidences"]) == pytest.approx(1.0, abs=1e-4)
    assert label["label"] in EMOTIONS
    for path in (scene, objects):
        assert Image.open(path).size[0] >= 256
    assert attributes["headers"] == ["query", "nearest attribute", "cosine similarity"]
    assert len(attributes["data"]) == 6


def test_generate_endpoint(client):
    gallery = client.predict("awe", 2, 7, STEPS, 7.5, api_name="/generate")
    assert [item["caption"] for item in gallery] == ["awe · seed 7", "awe · seed 8"]
    assert all(Image.open(item["image"]).size == (256, 256) for item in gallery)


def test_transfer_endpoint(client):
    transferred, neutral = client.predict("fear", "sofa", 1, 0, STEPS, 7.5, api_name="/transfer")
    assert transferred[0]["caption"] == "fear sofa · seed 0"
    assert neutral[0]["caption"] == "sofa (neutral) · seed 0"


def test_fuse_endpoint_with_sweep(client):
    fused, strip = client.predict("amusement", "fear", 0.25, True, 1, 0, STEPS, 7.5, api_name="/fuse")
    assert len(fused) == 1 and len(strip) == 5
    _, strip = client.predict("amusement", "fear", 0.25, False, 1, 0, STEPS, 7.5, api_name="/fuse")
    assert not strip


def test_generation_reports_progress_steps(client):
    job = client.submit("awe", 1, 0, 30, 7.5, api_name="/generate")
    seen = set()
    while not job.done():
        for unit in job.status().progress_data or []:
            seen.add((unit.desc, unit.length))
        time.sleep(0.01)
    job.result()
    assert ("Generating", 30) in seen


def test_twenty_concurrent_classifications_all_succeed(client):
    jobs = [client.submit(handle_file(str(EXAMPLE)), api_name="/classify") for _ in range(20)]
    results = [job.result(timeout=120) for job in jobs]
    assert len(results) == 20
    assert len({r[0]["label"] for r in results}) == 1  # same image, same answer, whatever the interleaving


def _text_file(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not an image")
    return handle_file(str(path))


def _truncated_jpeg(tmp_path):
    path = tmp_path / "cut.jpg"
    Image.effect_noise((64, 64), 60).convert("RGB").save(path, quality=95)
    path.write_bytes(path.read_bytes()[:400])
    return handle_file(str(path))


def _one_pixel(tmp_path):
    path = tmp_path / "dot.png"
    Image.new("RGB", (1, 1)).save(path)
    return handle_file(str(path))


def _bomb(tmp_path):
    """A 45-byte PNG whose header claims 30000 x 30000 pixels."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    path = tmp_path / "bomb.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b""))
    return handle_file(str(path))


CLASSIFY_CASES = {"non-image": (_text_file, "not an image file"),
                  "truncated-jpeg": (_truncated_jpeg, "truncated or corrupt"),
                  "one-pixel": (_one_pixel, "at least 16"),
                  "decompression-bomb": (_bomb, "megapixels are accepted")}


@pytest.mark.parametrize("case", list(CLASSIFY_CASES))
def test_bad_images_give_an_error_and_the_server_keeps_serving(client, tmp_path, case):
    make, message = CLASSIFY_CASES[case]
    with pytest.raises(AppError, match=message):
        client.predict(make(tmp_path), api_name="/classify")
    assert_still_serving(client)


@pytest.mark.parametrize("args, api_name, message", [
    (("joy", 1, 0, STEPS, 7.5), "/generate", "unknown emotion 'joy'"),
    (("awe", 1, 0, 10_000, 7.5), "/generate", "number of steps must be from 1 to 200"),
    (("awe", 1, 0, STEPS, 99.0), "/generate", "guidance scale must be from 0 to 30"),
    (("awe", 50, 0, STEPS, 7.5), "/generate", "number of images must be from 1 to 8"),
    (("fear", "", 1, 0, STEPS, 7.5), "/transfer", "noun is empty"),
    (("fear", "x" * 10_000, 1, 0, STEPS, 7.5), "/transfer", "at most 200"),
    (("awe", "fear", 1.5, False, 1, 0, STEPS, 7.5), "/fuse", r"weight must be from 0 to 1"),
], ids=["emotion", "steps", "guidance", "images", "empty-noun", "long-noun", "weight"])
def test_bad_arguments_give_an_error_and_the_server_keeps_serving(client, args, api_name, message):
    with pytest.raises(AppError, match=message):
        client.predict(*args, api_name=api_name)
    assert_still_serving(client)


def test_uploads_above_the_size_limit_are_refused(client, server, tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(b"\0" * (11 * 1024 * 1024))
    # gradio_client refuses it before sending (it reads the server's limit) ...
    with pytest.raises(ValueError, match="maximum file size"):
        client.predict(handle_file(str(path)), api_name="/classify")
    # ... and the server refuses it too, for clients that send it anyway
    with open(path, "rb") as f:
        response = httpx.post(f"{server}gradio_api/upload", files={"files": ("huge.png", f, "image/png")})
    assert response.status_code == 413
    assert_still_serving(client)


def test_classify_reads_only_uploaded_files(server, example_copy):
    """The classify event skips gradio's preprocessing; a raw call naming a file on the server that no one
    uploaded must still be refused (gradio checks the path before any handler runs)."""
    event = httpx.post(f"{server}gradio_api/call/classify",
                       json={"data": [{"path": str(example_copy), "meta": {"_type": "gradio.FileData"}}]})
    stream = httpx.get(f"{server}gradio_api/call/classify/{event.json()['event_id']}", timeout=60)
    assert "event: error" in stream.text and "event: complete" not in stream.text


@pytest.fixture
def example_copy(tmp_path_factory):
    # outside the repository, gradio's upload folder and the working directory
    path = tmp_path_factory.mktemp("server_side") / "secret.png"
    path.write_bytes(EXAMPLE.read_bytes())
    return path


# ---------------------------------------------------------------------------------- files on the server

# gradio components whose value is a file (FileData): an endpoint with one of these as input takes a file
FILE_COMPONENTS = {"image", "file", "gallery", "video", "audio", "model3d", "imageeditor", "imageslider",
                   "annotatedimage", "multimodaltextbox", "uploadbutton", "simpleimage"}


@pytest.fixture(scope="module")
def config(server):
    return httpx.get(f"{server}config").json()


def file_endpoints(config) -> dict[str, list]:
    """Every endpoint a client may call that takes a file: api name -> its input components' (type, value)."""
    components = {c["id"]: c for c in config["components"]}
    endpoints = {}
    for dep in config["dependencies"]:
        inputs = [(components[i]["type"], components[i].get("props", {}).get("value")) for i in dep["inputs"]]
        if dep.get("api_name") and dep.get("api_visibility") != "private" and any(
                kind in FILE_COMPONENTS for kind, _ in inputs):
            endpoints[dep["api_name"]] = inputs
    return endpoints


def call_raw(server, api_name: str, data: list) -> list[tuple[str, str]]:
    """``POST /gradio_api/call/<api_name>`` as any HTTP client can, then the (event, data) pairs of its result."""
    event = httpx.post(f"{server}gradio_api/call/{api_name}", json={"data": data})
    assert event.status_code == 200, event.text
    stream = httpx.get(f"{server}gradio_api/call/{api_name}/{event.json()['event_id']}", timeout=120).text
    events, name = [], None
    for line in stream.splitlines():
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: ") and name not in (None, "heartbeat"):
            events.append((name, line.removeprefix("data: ")))
    return events


@pytest.fixture(scope="module")
def server_files(tmp_path_factory):
    """An image, a text file and a missing file, outside gradio's upload folder and the bundled examples."""
    import gradio.utils

    folder = tmp_path_factory.mktemp("server_files")
    assert not folder.resolve().is_relative_to(Path(gradio.utils.get_upload_folder()).resolve())
    image = folder / "holiday.png"
    Image.open(EXAMPLE).resize((96, 80)).save(image)
    text = folder / "passwords.txt"
    text.write_text("root:hunter2\n" * 50)
    return {"image": image, "non-image": text, "missing": folder / "nothing-here.png"}


def test_an_endpoint_that_takes_a_file_opens_only_uploads(server, config, server_files):
    """Every endpoint that takes a file, sent a path on the server (no ``meta``, so gradio passes it through
    untouched), answers the same refusal for an image, a non-image and a missing file: no overlay, no size,
    nothing that tells them apart. The same path written with ``..`` through the upload folder is refused
    alike; a bare string never reaches the handler (gradio's own check fails it), and says nothing either."""
    import gradio.utils

    endpoints = file_endpoints(config)
    assert "classify" in endpoints
    upload_folder = gradio.utils.get_upload_folder()
    sizes = [str(path.stat().st_size) for path in server_files.values() if path.exists()]
    for api_name, inputs in endpoints.items():
        for form in ("path", "dotted path", "bare string"):
            answers = []
            for case, path in server_files.items():
                dotted = os.path.join(upload_folder, os.path.relpath(path, upload_folder))
                value = {"path": {"path": str(path), "dotted path": dotted}[form]} if "path" in form else str(path)
                data = [value if kind in FILE_COMPONENTS else default for kind, default in inputs]
                events = call_raw(server, api_name, data)
                assert [name for name, _ in events] == ["error"], (api_name, form, case, events)
                text = json.dumps(events)
                for leak in ["holiday", "passwords", "nothing-here", "96", "80", *sizes]:
                    assert leak not in text, (api_name, form, case, leak)
                answers.append(json.loads(events[0][1]))
            assert answers[0] == answers[1] == answers[2], (api_name, form, answers)
            if form != "bare string":
                assert answers[0]["error"] == NOT_UPLOADED


def test_an_uploaded_file_named_by_its_path_is_classified(server):
    """The check lets through what gradio itself stored: a file sent to /gradio_api/upload, then named by
    the path the upload returned (still without ``meta``)."""
    with open(EXAMPLE, "rb") as f:
        uploaded = httpx.post(f"{server}gradio_api/upload", files={"files": (EXAMPLE.name, f, "image/png")})
    events = call_raw(server, "classify", [{"path": uploaded.json()[0]}])
    assert [name for name, _ in events] == ["complete"]
    assert json.loads(events[0][1])[0]["label"] in EMOTIONS


def test_the_page_shows_no_server_path(server, tiny_model_dir):
    texts = {"page": httpx.get(server).text, "config": httpx.get(f"{server}config").text,
             "api info": httpx.get(f"{server}gradio_api/info").text}
    for where, text in texts.items():
        for path in {ROOT, ROOT.resolve(), tiny_model_dir, tiny_model_dir.resolve()}:
            assert str(path) not in text, (where, path)
    assert f"{tiny_model_dir.parent.name}/{tiny_model_dir.name}" in texts["config"]  # named, by folder


def test_an_error_stays_in_the_tabs_status_line(client, server, config, tmp_path):
    """After a failed run the tab's status line holds the message (the pop-up fades); after a good run it is
    empty again. The page fetches it with the event chained after each model event, in its own session."""
    components = {c["id"]: c for c in config["components"]}

    def status_line() -> str:
        classify = next(d for d in config["dependencies"] if d.get("api_name") == "classify")
        chained = next(d for d in config["dependencies"]
                       if d.get("trigger_after") == classify["id"] and d.get("trigger_only_on_failure"))
        assert [components[i]["props"]["elem_id"] for i in chained["outputs"]] == ["cls-status"]
        response = httpx.post(f"{server}gradio_api/run/predict",
                              json={"fn_index": chained["id"], "data": [], "session_hash": client.session_hash,
                                    "event_data": None, "trigger_id": None})
        assert response.status_code == 200, response.text
        return response.json()["data"][0]

    with pytest.raises(AppError, match="not an image file"):
        client.predict(_text_file(tmp_path), api_name="/classify")
    line = status_line()
    assert "not an image file" in line and "notes.png" in line
    client.predict(handle_file(str(EXAMPLE)), api_name="/classify")
    assert status_line() == ""
