"""The demo's page: ``build_demo(pipe)`` lays out the tabs and binds them to ``demo.handlers``.

No torch, no model state and no sampling logic live here. Each event function is a few lines: unwrap the
raw input, call a handler with the pipeline, report progress through ``gr.Progress``, turn the handler's
``ValueError`` into ``gr.Error`` so the page shows the message and the server keeps serving, and hand the
images to gradio as files of their own (``_as_files``). The pop-up fades, so the message also goes to the
tab's status line (``_StatusBoard``, shown by events chained after each model event).

API names (stable; ``gradio_client`` uses them): ``/classify``, ``/generate``, ``/transfer``, ``/fuse``.
Generation, transfer and fusion share one concurrency group (``concurrency_id="model"``, limit 1), so on a
single GPU or CPU the renders queue instead of competing for memory. Classification takes milliseconds and has
a group of its own (``"classify"``), so it never waits behind queued renders.

Files: the events skip gradio's preprocessing, so an API call can name any server path in place of an upload;
the classify handler opens only files in gradio's upload folder or the bundled examples
(``handlers.check_uploaded``).

Hugging Face Spaces: the model functions are wrapped in ``spaces.GPU`` when the ``spaces`` package is there
(it does nothing outside ZeroGPU), else in an identity decorator. Example caching is explicit: the cheap
classification examples are cached eagerly (milliseconds at start-up); generation examples are never cached,
on any hardware, and only fill in the inputs. So no Space renders images at start-up, and every rendering
goes through the one "model" queue slot (gradio runs lazy example caching in an event of its own, outside
that slot).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import gradio.utils
from PIL import Image

from demo import handlers
from uniemo.pipeline import MAX_GUIDANCE

try:
    import spaces

    gpu = spaces.GPU
except ImportError:

    def gpu(fn: Callable | None = None, **kwargs: Any) -> Callable:
        """Stand-in for ``spaces.GPU`` off Spaces: usable as ``@gpu`` and as ``@gpu(duration=...)``."""
        return fn if fn is not None else (lambda f: f)


MAX_FILE_SIZE = "10mb"  # upload limit for launch(); handlers.MAX_INPUT_BYTES says the same to API callers
QUEUE_MAX_SIZE = 64  # requests waiting beyond this are turned away with a "queue full" message
# Every rendering event: one shared queue slot, and no gradio preprocessing. The handlers validate the raw
# values themselves (the API bypasses the page's widgets anyway), so every bad input gets the same clear
# message, and a broken upload reaches our image loader instead of failing inside gradio with a generic one.
MODEL_EVENT = {"concurrency_id": "model", "concurrency_limit": 1, "preprocess": False}
# Classification: a slot group of its own, so it never waits behind queued renders. It only reads the
# classifier (no sampler state), so two at a time are safe; raw inputs, as above.
CLASSIFY_EVENT = {"concurrency_id": "classify", "concurrency_limit": 2, "preprocess": False}
# The status line's update after each model event: quick, outside the queue, not an API endpoint.
STATUS_EVENT = {"queue": False, "show_progress": "hidden", "api_visibility": "private"}


class _StatusBoard:
    """The last error of each page session and tab, kept until the tab's status line shows it.

    A failed event updates none of its outputs and its pop-up fades; so the event leaves its message here and a
    chained event (``show``) moves it into the tab's status line, or empties the line after a success. API
    callers never run the chained event, so only the newest ``limit`` messages are kept.
    """

    def __init__(self, limit: int = 1024):
        self.limit = limit
        self._messages: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._lock = threading.Lock()

    def recorder(self, request: gr.Request | None, tab: str) -> Callable[[str], None] | None:
        """Forget the session's last message for ``tab`` (a new run starts) and return a function that keeps
        the next one; ``None`` without a page session (examples cached at start-up)."""
        session = getattr(request, "session_hash", None)
        if session is None:
            return None
        with self._lock:
            self._messages.pop((session, tab), None)

        def record(message: str) -> None:
            with self._lock:
                self._messages[(session, tab)] = message
                while len(self._messages) > self.limit:
                    self._messages.popitem(last=False)

        return record

    def show(self, tab: str) -> Callable[..., str]:
        """The chained event's function: the status line's Markdown for this session and tab."""

        def status(request: gr.Request) -> str:
            with self._lock:
                message = self._messages.pop((getattr(request, "session_hash", None), tab), "")
            return status_markdown(message)

        return status


def status_markdown(message: str) -> str:
    """A tab's status line: the error as plain text (Markdown's special characters escaped), or nothing."""
    if not message:
        return ""
    text = re.sub(r"([\\`*_\[\]<>#|~])", r"\\\1", " ".join(message.split()))
    return f"**Could not run:** {text}"


@contextlib.contextmanager
def _shown_to_user(record: Callable[[str], None] | None = None) -> Iterator[None]:
    """Turn a handler's ValueError (bad input, with a clear message) into a message on the page: a pop-up, and
    through ``record`` (``_StatusBoard.recorder``) the tab's status line."""
    try:
        yield
    except ValueError as e:
        if record is not None:
            record(str(e))
        raise gr.Error(str(e), print_exception=False) from e


def _progress_fn(progress: gr.Progress, desc: str) -> Callable[[int, int], None]:
    return lambda done, total: progress((done, total), desc=desc, unit="steps")


def _as_files(value: Any, folder: str) -> Any:
    """A handler's result with every PIL image written to a PNG file of its own in gradio's cache folder.

    Gradio 6.31 saves a returned PIL image under a name derived from its bytes and rewrites that file each
    time, so two identical results in a row (the same image classified twice, the same seed rendered twice)
    can truncate a file while a client is still downloading it. A file that is already in the cache folder
    is served as it is, and removed with the rest of the cache.
    """
    if isinstance(value, Image.Image):
        os.makedirs(folder, exist_ok=True)
        handle, path = tempfile.mkstemp(dir=folder, prefix="uniemo-", suffix=".png")
        with os.fdopen(handle, "wb") as f:
            value.save(f, format="PNG")
        return path
    if isinstance(value, list):
        return [_as_files(item, folder) for item in value]
    if isinstance(value, tuple):
        items = [_as_files(item, folder) for item in value]
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)  # NamedTuple or tuple
    return value


def _file_path(value: Any) -> Any:
    """The file path of an image input: without preprocessing it arrives as the upload's FileData dict."""
    return value.get("path") if isinstance(value, dict) else value


def _example_images() -> list[Path]:
    return sorted(p for p in handlers.EXAMPLES_DIR.glob("*")
                  if p.suffix.lower() in {".png", ".jpg", ".jpeg", ".webp"})


def _status(elem_id: str) -> gr.Markdown:
    return gr.Markdown("", elem_id=elem_id)


def _bind(button: gr.Button, fn: Callable, inputs: list, outputs: list, api_name: str, status: gr.Markdown,
          board: _StatusBoard, event: dict[str, Any]) -> None:
    """``button`` runs ``fn`` as the API endpoint ``api_name``; then the tab's ``status`` line shows what the
    run left on ``board`` under that name (its error, or nothing)."""
    run = button.click(fn, inputs, outputs, api_name=api_name, **event)
    # one listener for each outcome: gradio 6.31's page runs a .then() listener only after a success
    run.success(board.show(api_name), None, [status], **STATUS_EVENT)
    run.failure(board.show(api_name), None, [status], **STATUS_EVENT)


def _sampling_controls(pipe, limits: handlers.DemoLimits, prefix: str, guidance_key: str = "guidance_scale"
                       ) -> list[gr.components.Component]:
    """Number of images, seed, steps and guidance, in an accordion; the same four in every generation tab (the
    guidance starts at ``default_settings(pipe)[guidance_key]``: Transfer has its own)."""
    defaults = handlers.default_settings(pipe)
    with gr.Accordion("Sampling", open=True, elem_id=f"{prefix}-sampling"):
        with gr.Row():
            num_images = gr.Slider(1, limits.max_images, value=defaults["num_images"], step=1, precision=0,
                                   label="Images")
            seed = gr.Number(value=defaults["seed"], precision=0, minimum=0, maximum=handlers.MAX_SEED,
                             label="Seed (image i uses seed + i)")
        with gr.Row():
            steps = gr.Slider(1, limits.max_steps, value=defaults["num_inference_steps"], step=1, precision=0,
                              label="Denoising steps")
            guidance = gr.Slider(0.0, MAX_GUIDANCE, value=defaults[guidance_key], step=0.5,
                                 label="Guidance scale")
    return [num_images, seed, steps, guidance]


def _gallery(label: str, elem_id: str, columns: int = 4) -> gr.Gallery:
    # png keeps the exact pixels (the webp default would blur the enlarged small images).
    # fit_columns=False keeps a fixed thumbnail width, so two images don't stretch to half the page each.
    return gr.Gallery(label=label, elem_id=elem_id, columns=columns, fit_columns=False, height=330,
                      object_fit="contain", format="png", preview=False, interactive=False)


def build_demo(pipe, reasoner=None) -> gr.Blocks:
    """Lay out the UniEmo page for a loaded pipeline.

    Args:
        pipe: a loaded ``UniEmoPipeline``; it is only passed on to ``demo.handlers``.
        reasoner: an ``EmoSymPipeline`` whose rationales the Understand tab adds to ``pipe``'s attributes (the
            two bundled models served together), or ``None``.

    Returns:
        The ``gr.Blocks`` page; call ``.queue(...).launch(...)`` on it (see ``app.py``).
    """
    limits = handlers.demo_limits(pipe)
    defaults = handlers.default_settings(pipe)
    emotions = list(pipe.emotions)
    # where gradio keeps uploads and the files it serves (GRADIO_TEMP_DIR, else <tmp>/gradio): with the bundled
    # examples, the only places an image path sent to /classify may point to
    cache = gradio.utils.get_upload_folder()
    folders = (cache, handlers.EXAMPLES_DIR)
    board = _StatusBoard()

    @gpu
    def classify(image, request: gr.Request = None):
        with _shown_to_user(board.recorder(request, "classify")):
            return _as_files(handlers.classify_image(pipe, _file_path(image), folders=folders,
                                                              reasoner=reasoner), cache)

    @gpu(duration=120)
    def generate(emotion, num_images, seed, steps, guidance, progress=gr.Progress(), request: gr.Request = None):
        with _shown_to_user(board.recorder(request, "generate")):
            return _as_files(handlers.generate_images(pipe, emotion, num_images, seed, steps, guidance,
                                                      progress=_progress_fn(progress, "Generating")), cache)

    @gpu(duration=120)
    def transfer(emotion, noun, num_images, seed, steps, guidance, progress=gr.Progress(),
                 request: gr.Request = None):
        with _shown_to_user(board.recorder(request, "transfer")):
            return _as_files(handlers.transfer_images(pipe, emotion, noun, num_images, seed, steps, guidance,
                                                      progress=_progress_fn(progress, "Transferring")), cache)

    @gpu(duration=120)
    def fuse(emotion_a, emotion_b, weight, sweep, num_images, seed, steps, guidance, progress=gr.Progress(),
             request: gr.Request = None):
        with _shown_to_user(board.recorder(request, "fuse")):
            return _as_files(handlers.fuse_images(pipe, emotion_a, emotion_b, weight, num_images, seed, steps,
                                                  guidance, sweep=sweep,
                                                  progress=_progress_fn(progress, "Fusing")), cache)

    # Old files in gradio's per-request cache (uploads, generated images) are removed hourly.
    with gr.Blocks(title="UniEmo demo", delete_cache=(3600, 3600)) as demo:
        gr.Markdown("# UniEmo: emotions in images, understood and generated\n"
                    "Classify the emotion an image evokes and see where the scene and object expert queries "
                    "look; generate images that evoke an emotion, carry one onto a neutral object, or blend two.")
        gr.Markdown(handlers.model_summary(pipe), elem_id="model-line")
        if limits.notice:
            gr.Markdown(f"**Note:** {limits.notice}", elem_id="cpu-notice")

        with gr.Tabs():
            with gr.Tab("Understand", id="understand"):
                notice = handlers.understand_notice(pipe)
                if notice:
                    gr.Markdown(notice, elem_id="cls-notice")
                with gr.Row():
                    with gr.Column():
                        image = gr.Image(type="filepath", image_mode=None, sources=["upload", "clipboard"],
                                         label="Image (upload or paste)", height=300, elem_id="cls-image")
                        classify_button = gr.Button("Classify", variant="primary", elem_id="cls-button")
                    with gr.Column():
                        cls_status = _status("cls-status")
                        probs = gr.Label(num_top_classes=len(emotions), label="Emotion", elem_id="cls-label")
                emosym = handlers.is_emosym(pipe)  # EmoSym answers with sentences, not attention maps
                with gr.Row(visible=not emosym):
                    scene = gr.Image(label="Scene queries' attention", format="png", height=300,
                                     interactive=False, elem_id="cls-scene")
                    objects = gr.Image(label="Object queries' attention", format="png", height=300,
                                       interactive=False, elem_id="cls-object")
                attributes = gr.Dataframe(headers=["query", "nearest attribute", "cosine similarity"],
                                          label="Why: the nearest rationales" if emosym else
                                          "Nearest attributes, and EmoSym's rationales" if reasoner is not None
                                          else "Nearest attributes",
                                          interactive=False, elem_id="cls-attributes")
                outputs = [probs, scene, objects, attributes]
                _bind(classify_button, classify, [image], outputs, "classify", cls_status, board, CLASSIFY_EVENT)
                examples = _example_images()
                if examples:
                    # Classification takes milliseconds, so caching at start-up costs nothing and the first
                    # example's result is on the page as soon as it loads.
                    gr.Examples([[str(p)] for p in examples], [image], outputs, fn=classify,
                                cache_examples=True, cache_mode="eager", preprocess=False,
                                examples_per_page=len(examples), elem_id="cls-examples")

            # Generation examples only fill in the inputs; the button then runs them in the shared queue slot.
            fill_only = {"cache_examples": False, "run_on_click": False}
            sampling_example = [defaults["num_images"], 0, defaults["num_inference_steps"],
                                defaults["guidance_scale"]]

            with gr.Tab("Generate", id="generate"):
                emotion = gr.Dropdown(emotions, value=emotions[min(1, len(emotions) - 1)], label="Emotion",
                                      elem_id="gen-emotion")
                gen_sampling = _sampling_controls(pipe, limits, "gen")
                gen_button = gr.Button("Generate", variant="primary", elem_id="gen-button")
                gen_status = _status("gen-status")
                gen_gallery = _gallery("Generated images", "gen-gallery")
                gen_inputs = [emotion, *gen_sampling]
                _bind(gen_button, generate, gen_inputs, [gen_gallery], "generate", gen_status, board, MODEL_EVENT)
                gr.Examples([[e, *sampling_example] for e in emotions[:4]], gen_inputs, **fill_only)

            with gr.Tab("Transfer", id="transfer"):
                with gr.Row():
                    tr_emotion = gr.Dropdown(emotions, value=emotions[-2] if len(emotions) > 1 else emotions[0],
                                             label="Emotion", elem_id="tr-emotion")
                    nouns = list(pipe.transfer_nouns)  # what this model's SD can draw; any noun may be typed
                    noun = gr.Dropdown(nouns, value="lamp" if "lamp" in nouns else nouns[0], allow_custom_value=True,
                                       label="Object (pick one or type your own)", elem_id="tr-noun")
                tr_sampling = _sampling_controls(pipe, limits, "tr", "transfer_guidance_scale")
                tr_button = gr.Button("Transfer", variant="primary", elem_id="tr-button")
                tr_status = _status("tr-status")
                with gr.Row():
                    neutral = _gallery("The object alone (same seeds)", "tr-neutral", columns=2)
                    transferred = _gallery("With the emotion", "tr-gallery", columns=2)
                tr_inputs = [tr_emotion, noun, *tr_sampling]
                _bind(tr_button, transfer, tr_inputs, [transferred, neutral], "transfer", tr_status, board,
                      MODEL_EVENT)
                pairs = list(zip(emotions[1::2], nouns[::2], strict=False))  # mixes valences and objects
                tr_example = [*sampling_example[:-1], defaults["transfer_guidance_scale"]]
                gr.Examples([[e, n, *tr_example] for e, n in pairs], tr_inputs, **fill_only)

            with gr.Tab("Fuse", id="fuse"):
                with gr.Row():
                    emotion_a = gr.Dropdown(emotions, value=emotions[0], label="Emotion A", elem_id="fu-a")
                    emotion_b = gr.Dropdown(emotions, value=emotions[-2] if len(emotions) > 1 else emotions[0],
                                            label="Emotion B", elem_id="fu-b")
                with gr.Row():
                    weight = gr.Slider(0.0, 1.0, value=0.5, step=0.05,
                                       label="Weight of A (1 = A alone, 0 = B alone)")
                    sweep = gr.Checkbox(value=False, label="Also sweep the weight (0, 0.25, 0.5, 0.75, 1)")
                fu_sampling = _sampling_controls(pipe, limits, "fu")
                fu_button = gr.Button("Fuse", variant="primary", elem_id="fu-button")
                fu_status = _status("fu-status")
                fused = _gallery("Fused images", "fu-gallery")
                strip = _gallery("Weight sweep (same seed)", "fu-sweep", columns=len(handlers.SWEEP_WEIGHTS))
                fu_inputs = [emotion_a, emotion_b, weight, sweep, *fu_sampling]
                _bind(fu_button, fuse, fu_inputs, [fused, strip], "fuse", fu_status, board, MODEL_EVENT)
                combos = [(emotions[0], e) for e in emotions[1:]][:3]
                gr.Examples([[a, b, 0.5, True, 1, *sampling_example[1:]] for a, b in combos], fu_inputs,
                            **fill_only)

            with gr.Tab("About", id="about"):
                gr.Markdown(handlers.about_markdown(pipe), elem_id="about")
    return demo
