"""The demo's page: ``build_demo(pipe)`` lays out the tabs and binds them to ``demo.handlers`` (STYLE.md 2.10).

No torch, no model state and no sampling logic live here. Each event function is a few lines: unwrap the
raw input, call a handler with the pipeline, report progress through ``gr.Progress``, turn the handler's
``ValueError`` into ``gr.Error`` so the page shows the message and the server keeps serving, and hand the
images to gradio as files of their own (``_as_files``).

API names (stable; ``gradio_client`` uses them): ``/classify``, ``/generate``, ``/transfer``, ``/fuse``.
Every model call shares one concurrency group (``concurrency_id="model"``, limit 1), so on a single GPU or
CPU the requests queue instead of competing for memory.

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
import tempfile
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


EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "assets" / "examples"
MAX_FILE_SIZE = "10mb"  # upload limit for launch(); handlers.MAX_INPUT_BYTES says the same to API callers
QUEUE_MAX_SIZE = 64  # requests waiting beyond this are turned away with a "queue full" message
# Every model event: one shared queue slot, and no gradio preprocessing. The handlers validate the raw values
# themselves (the API bypasses the page's widgets anyway), so every bad input gets the same clear message,
# and a broken upload reaches our image loader instead of failing inside gradio with a generic one.
MODEL_EVENT = {"concurrency_id": "model", "concurrency_limit": 1, "preprocess": False}


@contextlib.contextmanager
def _shown_to_user() -> Iterator[None]:
    """Turn a handler's ValueError (bad input, with a clear message) into a message on the page."""
    try:
        yield
    except ValueError as e:
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
    return sorted(p for p in EXAMPLES_DIR.glob("*") if p.suffix.lower() in {".png", ".jpg", ".jpeg", ".webp"})


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


def build_demo(pipe) -> gr.Blocks:
    """Lay out the UniEmo page for a loaded pipeline.

    Args:
        pipe: a loaded ``UniEmoPipeline``; it is only passed on to ``demo.handlers``.

    Returns:
        The ``gr.Blocks`` page; call ``.queue(...).launch(...)`` on it (see ``app.py``).
    """
    limits = handlers.demo_limits(pipe)
    defaults = handlers.default_settings(pipe)
    emotions = list(pipe.emotions)
    cache = gradio.utils.get_upload_folder()  # where gradio keeps the files it serves (GRADIO_TEMP_DIR)

    @gpu
    def classify(image):
        with _shown_to_user():
            return _as_files(handlers.classify_image(pipe, _file_path(image)), cache)

    @gpu(duration=120)
    def generate(emotion, num_images, seed, steps, guidance, progress=gr.Progress()):
        with _shown_to_user():
            return _as_files(handlers.generate_images(pipe, emotion, num_images, seed, steps, guidance,
                                                      progress=_progress_fn(progress, "Generating")), cache)

    @gpu(duration=120)
    def transfer(emotion, noun, num_images, seed, steps, guidance, progress=gr.Progress()):
        with _shown_to_user():
            return _as_files(handlers.transfer_images(pipe, emotion, noun, num_images, seed, steps, guidance,
                                                      progress=_progress_fn(progress, "Transferring")), cache)

    @gpu(duration=120)
    def fuse(emotion_a, emotion_b, weight, sweep, num_images, seed, steps, guidance, progress=gr.Progress()):
        with _shown_to_user():
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
                with gr.Row():
                    with gr.Column():
                        image = gr.Image(type="filepath", image_mode=None, sources=["upload", "clipboard"],
                                         label="Image (upload or paste)", height=300, elem_id="cls-image")
                        classify_button = gr.Button("Classify", variant="primary", elem_id="cls-button")
                    with gr.Column():
                        probs = gr.Label(num_top_classes=len(emotions), label="Emotion", elem_id="cls-label")
                with gr.Row():
                    scene = gr.Image(label="Scene queries' attention", format="png", height=300,
                                     interactive=False, elem_id="cls-scene")
                    objects = gr.Image(label="Object queries' attention", format="png", height=300,
                                       interactive=False, elem_id="cls-object")
                attributes = gr.Dataframe(headers=["query", "nearest attribute", "cosine similarity"],
                                          label="Nearest attributes", interactive=False,
                                          elem_id="cls-attributes")
                outputs = [probs, scene, objects, attributes]
                classify_button.click(classify, [image], outputs, api_name="classify", **MODEL_EVENT)
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
                gen_gallery = _gallery("Generated images", "gen-gallery")
                gen_inputs = [emotion, *gen_sampling]
                gen_button.click(generate, gen_inputs, [gen_gallery], api_name="generate", **MODEL_EVENT)
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
                with gr.Row():
                    neutral = _gallery("The object alone (same seeds)", "tr-neutral", columns=2)
                    transferred = _gallery("With the emotion", "tr-gallery", columns=2)
                tr_inputs = [tr_emotion, noun, *tr_sampling]
                tr_button.click(transfer, tr_inputs, [transferred, neutral], api_name="transfer", **MODEL_EVENT)
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
                fused = _gallery("Fused images", "fu-gallery")
                strip = _gallery("Weight sweep (same seed)", "fu-sweep", columns=len(handlers.SWEEP_WEIGHTS))
                fu_inputs = [emotion_a, emotion_b, weight, sweep, *fu_sampling]
                fu_button.click(fuse, fu_inputs, [fused, strip], api_name="fuse", **MODEL_EVENT)
                combos = [(emotions[0], e) for e in emotions[1:]][:3]
                gr.Examples([[a, b, 0.5, True, 1, *sampling_example[1:]] for a, b in combos], fu_inputs,
                            **fill_only)

            with gr.Tab("About", id="about"):
                gr.Markdown(handlers.about_markdown(pipe), elem_id="about")
    return demo
