"""The demo's handlers: plain functions from raw inputs to plain Python and PIL values (STYLE.md 2.10).

Every handler takes the ``UniEmoPipeline`` as its first argument, validates its other arguments itself (they
may come straight from the ``gradio_client`` API, which bypasses the page's slider limits) and raises
``ValueError`` with a message that says what is allowed. Nothing here imports gradio: ``demo/ui.py`` binds
these functions to components and turns ``ValueError`` into ``gr.Error`` and a status line in the tab.

Files named by a request: the page's events skip gradio's preprocessing, so an API caller can name any path
on the server. ``classify_image(..., folders=...)`` opens a path only when its real location (symlinks and
``..`` resolved) lies in one of ``folders`` (the page passes gradio's upload folder and the bundled examples);
any other path gets ``NOT_UPLOADED``, one message that says nothing about the file. What the page shows names
the model by its folder name or Hub repo id, never by a path on the server (``model_name``).

Handlers and the tabs they serve:

    classify_image   Understand  probabilities, scene/object attention overlays, nearest attributes
    generate_images  Generate    images evoking an emotion (emotion space -> condition -> SD)
    transfer_images  Transfer    the emotion carried onto a neutral noun, beside the noun alone (same seeds)
    fuse_images      Fuse        w * c(a) + (1 - w) * c(b), plus an optional strip sweeping w
    about_markdown   About       the loaded model, its emotions, base models, measured numbers, the paper

Gallery handlers return ``[(image, caption), ...]``; images smaller than ``DISPLAY_SIDE`` are enlarged by an
integer factor with nearest-neighbour filtering, so a 32 px UniEmo-Tiny image shows its real pixels at a
visible size (and the original is recovered exactly by taking every k-th pixel).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from PIL import Image, UnidentifiedImageError

from uniemo.constants import NEUTRAL_NOUNS
from uniemo.data.base import upright
from uniemo.pipeline import MAX_GUIDANCE, MAX_NOUN_CHARS, MAX_STEPS, load_input_image
from uniemo.viz import attention_overlay

# Input images. A decoded image costs 3 bytes per pixel (and more in transit through the model), so the
# demo refuses anything above 40 MP (a 7000 x 5700 photo still fits) instead of PIL's default of ~89 MP.
# Setting PIL's own limit too makes every PIL open in the server process (gradio's included) warn above it
# and refuse above twice it, before any pixel is decoded.
MAX_INPUT_PIXELS = 40_000_000
Image.MAX_IMAGE_PIXELS = MAX_INPUT_PIXELS
MAX_INPUT_BYTES = 10 * 1024 * 1024  # the same limit as the server's upload limit (demo.ui.MAX_FILE_SIZE)
MIN_INPUT_SIDE = 16  # below this there is nothing for a patch grid to look at
MAX_WORKING_SIDE = 1024  # larger accepted images are downscaled first: the model sees <= 224 px anyway

REPO_DIR = Path(__file__).resolve().parents[1]
ASSETS_DIR = REPO_DIR / "assets"  # the bundled model, examples, its report
EXAMPLES_DIR = ASSETS_DIR / "examples"  # the page's example images: the only files it opens besides uploads
# The one answer to a path outside the allowed folders, whether it exists, is an image or not: a request must
# not learn anything about the server's files from it.
NOT_UPLOADED = "this image was not uploaded to this page: upload or paste it, or pick one of the examples"

# Outputs.
DISPLAY_SIDE = 256  # smaller generated images and overlays are enlarged to at least this for display
MAX_OVERLAY_SIDE = 512  # larger views are shown at this size: enough to read a 7x7 or 16x16 patch grid
DEMO_MAX_IMAGES = 8  # one gallery's worth; the pipeline itself allows more
MAX_SEED = 2**31 - 1
SWEEP_WEIGHTS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
# On a CPU a full-size model (512 px SD) takes minutes per image; these keep one request near a minute.
FULL_SIZE_RESOLUTION = 256
CPU_MAX_STEPS = 20
CPU_MAX_SIZE = 256
CPU_MAX_IMAGES = 2

ProgressFn = Callable[[int, int], None]


# --------------------------------------------------------------------------------------------- limits


@dataclass(frozen=True)
class DemoLimits:
    """What one request may ask for on this machine.

    Attributes:
        max_images: the largest number of images per request.
        max_steps: the largest number of denoising steps.
        size: the side, in pixels, at which images are generated.
        capped: True when the model's own resolution or step range was reduced (CPU + full-size model).
        notice: a sentence for the page saying what was capped, or "".
    """

    max_images: int
    max_steps: int
    size: int
    capped: bool
    notice: str


def demo_limits(pipe) -> DemoLimits:
    """The request limits for ``pipe`` on its device.

    On a CPU with a full-size diffusion model (resolution >= 256) steps, resolution and image count are
    capped; a small model such as UniEmo-Tiny (32-64 px), or any model on a GPU, runs uncapped.

    Args:
        pipe: a loaded ``UniEmoPipeline`` (only ``device`` and ``resolution`` are read).

    Returns:
        The ``DemoLimits`` that every generation handler enforces.
    """
    on_cpu = getattr(getattr(pipe, "device", None), "type", "cpu") == "cpu"
    resolution = int(pipe.resolution)
    if on_cpu and resolution >= FULL_SIZE_RESOLUTION:
        size = min(resolution, CPU_MAX_SIZE)
        notice = (f"Running on a CPU: generation is capped at {CPU_MAX_STEPS} steps, {size}x{size} px "
                  f"(the model's native size is {resolution} px) and {CPU_MAX_IMAGES} images per request. "
                  "Run on a GPU for full settings.")
        return DemoLimits(CPU_MAX_IMAGES, CPU_MAX_STEPS, size, True, notice)
    return DemoLimits(DEMO_MAX_IMAGES, MAX_STEPS, resolution, False, "")


def default_settings(pipe) -> dict[str, Any]:
    """The page's initial sampling values: the model's defaults, within this machine's limits."""
    limits = demo_limits(pipe)
    return {"num_images": min(2, limits.max_images),
            "seed": 0,
            "num_inference_steps": min(int(pipe.defaults["num_inference_steps"]), limits.max_steps),
            "guidance_scale": float(pipe.defaults["guidance_scale"]),
            # transfer's own recommendation when the model folder gives one (UniEmoPipeline.transfer)
            "transfer_guidance_scale": float(pipe.transfer_guidance_scale)}


# ------------------------------------------------------------------------------------------ validation


def _integer(value: Any, name: str, low: int, high: int) -> int:
    """An integer in [low, high]; integral floats (2.0, as JSON clients send) are accepted."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a whole number from {low} to {high}, got {value!r}")
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise ValueError(f"{name} must be a whole number from {low} to {high}, got {value!r}")
        value = int(value)
    if not low <= value <= high:
        raise ValueError(f"{name} must be from {low} to {high}, got {value}")
    return value


def _number(value: Any, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number from {low:g} to {high:g}, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be from {low:g} to {high:g}, got {value:g}")
    return float(value)


def check_emotion(pipe, emotion: Any) -> str:
    """The emotion name as the model spells it (case and surrounding spaces are forgiven).

    Raises:
        ValueError: naming the model's emotions, when ``emotion`` is not one of them.
    """
    if isinstance(emotion, str):
        key = emotion.strip().lower()
        for name in pipe.emotions:
            if name.lower() == key:
                return name
    shown = repr(emotion) if not isinstance(emotion, str) or len(emotion) <= 40 else repr(emotion[:40] + "...")
    raise ValueError(f"unknown emotion {shown}; choose one of {', '.join(pipe.emotions)}")


def check_noun(noun: Any, examples: tuple[str, ...] = NEUTRAL_NOUNS) -> str:
    """A noun (or short phrase) with its whitespace collapsed; ``examples`` are named when it is empty.

    Raises:
        ValueError: for an empty, non-text or over-long noun.
    """
    if noun is None or (isinstance(noun, str) and not noun.strip()):
        raise ValueError(f"the noun is empty: type an object, for example one of {', '.join(examples)}")
    if not isinstance(noun, str):
        raise ValueError(f"the noun must be text, got {type(noun).__name__}")
    noun = " ".join(noun.split())
    if len(noun) > MAX_NOUN_CHARS:
        raise ValueError(f"the noun is {len(noun):,} characters long; at most {MAX_NOUN_CHARS} are allowed")
    return noun


def _sampling(pipe, num_images: Any, seed: Any, steps: Any, guidance: Any, guidance_key: str = "guidance_scale"
              ) -> tuple[int, int, int, float, int]:
    """Validated (num_images, seed, steps, guidance, size) under this machine's ``DemoLimits``; a missing
    guidance is ``default_settings(pipe)[guidance_key]``."""
    limits = demo_limits(pipe)
    defaults = default_settings(pipe)
    steps = defaults["num_inference_steps"] if steps is None else steps
    guidance = defaults[guidance_key] if guidance is None else guidance
    num_images = _integer(num_images, "the number of images", 1, limits.max_images)
    # image i uses seed + i and its caption says so; that seed must itself be one the seed box accepts
    seed = _integer(seed, "the seed" if num_images == 1 else f"the seed for {num_images} images", 0,
                    MAX_SEED - (num_images - 1))
    return (num_images, seed, _integer(steps, "the number of steps", 1, limits.max_steps),
            _number(guidance, "the guidance scale", 0.0, MAX_GUIDANCE), limits.size)


# -------------------------------------------------------------------------------------------- images


def check_uploaded(path: str | os.PathLike, folders: Sequence[str | os.PathLike]) -> Path:
    """The real location of ``path`` when it lies inside one of ``folders``; ``NOT_UPLOADED`` otherwise.

    Symlinks and ``..`` are resolved first (on the path and on the folders), so a link inside a folder that points
    out of it, or ``folder/../elsewhere``, is refused. Nothing about the file is looked at before the answer:
    a missing file, a non-image and a real image outside the folders get the same ``ValueError``.

    Args:
        path: a file path named by a request.
        folders: where the page's files live (gradio's upload folder, the bundled examples).

    Raises:
        ValueError: ``NOT_UPLOADED``.
    """
    try:
        real = Path(os.path.realpath(path))
        inside = any(real.is_relative_to(os.path.realpath(folder)) for folder in folders)
    except (OSError, ValueError):  # a NUL byte in the name, an unreadable folder
        inside = False
    if not inside:
        raise ValueError(NOT_UPLOADED)
    return real


def read_image(image: Any, folders: Sequence[str | os.PathLike] | None = None) -> Image.Image:
    """Open an uploaded image as RGB, upright, or say clearly why it cannot be used.

    Handles any PIL mode (RGBA, palette, greyscale, CMYK, 16-bit) and animations (first frame), and applies the
    EXIF orientation (``upright``). Images above ``MAX_INPUT_PIXELS`` are refused before decoding (decompression
    bombs); accepted images larger than ``MAX_WORKING_SIDE`` are downscaled.

    Args:
        image: a file path (what the page and the API deliver) or a PIL image.
        folders: when given, a path is opened only if it lies in one of these folders (``check_uploaded``);
            ``None`` opens any path (scripts and tests; the page always passes its folders).

    Returns:
        An RGB PIL image whose longer side is at most ``MAX_WORKING_SIDE`` pixels.

    Raises:
        ValueError: for no image, a path outside ``folders``, a missing, empty, oversized, non-image, truncated
            or tiny file.
    """
    if image is None or (isinstance(image, str) and not image.strip()):
        raise ValueError("no image: upload or paste an image first")
    if isinstance(image, (str, os.PathLike)):
        path = Path(image) if folders is None else check_uploaded(image, folders)
        name = path.name if len(path.name) <= 60 else path.name[:57] + "..."
        if not path.is_file():
            raise ValueError(f"the image file {name!r} does not exist")
        nbytes = path.stat().st_size
        if nbytes == 0:
            raise ValueError(f"{name!r} is an empty file, not an image")
        if nbytes > MAX_INPUT_BYTES:
            raise ValueError(f"{name!r} is {nbytes / 2**20:.1f} MB; images up to "
                             f"{MAX_INPUT_BYTES // 2**20} MB are accepted")
        # A bomb warning (above the pixel limit) is made an error, like PIL's own error at twice the limit.
        # Image.open reads only the header, so this refuses a bomb before decoding any pixel.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                opened = Image.open(path)
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
                raise ValueError(f"{name!r} is too large to open safely ({e}); "
                                 f"at most {MAX_INPUT_PIXELS / 1e6:.0f} megapixels are accepted") from e
            except UnidentifiedImageError as e:
                raise ValueError(f"{name!r} is not an image file this demo can read "
                                 "(use PNG, JPEG, WebP, GIF, BMP or TIFF)") from e
            except (OSError, SyntaxError, ValueError) as e:
                raise ValueError(f"{name!r} could not be opened as an image; the file may be truncated or "
                                 f"corrupt ({e})") from e
        with opened:
            _check_pixels(opened.size)
            try:
                opened.load()  # decode now: a truncated file fails here, not later inside the model
                rgb = load_input_image(upright(opened))
            except (OSError, SyntaxError, ValueError) as e:
                raise ValueError(f"{name!r} could not be decoded; the file may be truncated or corrupt "
                                 f"({e})") from e
    elif isinstance(image, Image.Image):
        _check_pixels(image.size)
        rgb = load_input_image(upright(image))
    else:
        raise ValueError(f"expected an image file path or a PIL image, got {type(image).__name__}")
    if max(rgb.size) > MAX_WORKING_SIDE:
        rgb.thumbnail((MAX_WORKING_SIDE, MAX_WORKING_SIDE), Image.Resampling.LANCZOS)
    return rgb


def _check_pixels(size: tuple[int, int]) -> None:
    width, height = size
    if width * height > MAX_INPUT_PIXELS:
        raise ValueError(f"the image is {width}x{height} pixels ({width * height / 1e6:.0f} MP); "
                         f"at most {MAX_INPUT_PIXELS / 1e6:.0f} megapixels are accepted")
    if min(width, height) < MIN_INPUT_SIDE:
        raise ValueError(f"the image is {width}x{height} pixels; both sides must be at least "
                         f"{MIN_INPUT_SIDE} pixels")


def for_display(image: Image.Image, side: int = DISPLAY_SIDE) -> Image.Image:
    """Enlarge a small image by an integer factor (nearest neighbour) so its shorter side reaches ``side``."""
    factor = math.ceil(side / min(image.size))
    if factor <= 1:
        return image
    return image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)


# ------------------------------------------------------------------------------------------- progress


class _StepCounter:
    """Turns the pipeline's per-render ``(step, total)`` callbacks into one count over a whole request."""

    def __init__(self, progress: ProgressFn | None, renders: int, steps: int):
        self.progress, self.total, self.offset = progress, renders * steps, 0
        self.steps = steps

    def callback(self, step: int, total: int) -> None:
        if self.progress is not None:
            # clamped: a sampler with more model calls than steps must not report past 100 %
            self.progress(min(self.offset + step, self.total), self.total)

    def next_render(self) -> None:
        self.offset += self.steps


# ------------------------------------------------------------------------------------------- handlers


class Understanding(NamedTuple):
    """What the Understand tab shows; a tuple, so it maps onto the four output components in order.

    Attributes:
        probs: every emotion -> probability (sums to 1), what ``gr.Label`` displays.
        scene_overlay: the scene queries' attention over the model's view, as a heat map (RGB).
        object_overlay: the same for the object queries.
        attributes: rows ``[query kind, attribute name, cosine similarity]``, scene rows first.
    """

    probs: dict[str, float]
    scene_overlay: Image.Image
    object_overlay: Image.Image
    attributes: list[list[Any]]


def classify_image(pipe, image: Any, top_attributes: int = 3, cmap: str = "jet",
                   alpha: float = 0.5, folders: Sequence[str | os.PathLike] | None = None) -> Understanding:
    """Emotion probabilities, attention overlays and nearest attributes for one image.

    Args:
        pipe: a loaded ``UniEmoPipeline``.
        image: an image file path or PIL image (see ``read_image`` for what is accepted).
        top_attributes: how many nearest scene and object attributes to list (1-10).
        cmap: matplotlib colormap of the overlays.
        alpha: heat-map weight of the overlays, in [0, 1].
        folders: the only folders a path may lie in (see ``read_image``); the page passes its upload and
            example folders.

    Returns:
        An ``Understanding``; the overlays are squares of ``DISPLAY_SIDE`` to ``MAX_OVERLAY_SIDE`` pixels.

    Raises:
        ValueError: for an unusable image or argument.
    """
    top_attributes = _integer(top_attributes, "the number of attributes", 1, 10)
    prediction = pipe.classify(read_image(image, folders), top_attributes=top_attributes)
    view = prediction.view
    side = min(max(DISPLAY_SIDE, min(view.size)), MAX_OVERLAY_SIDE)
    overlays = [attention_overlay(view, att, cmap=cmap, alpha=alpha, size=side)
                for att in (prediction.scene_attention, prediction.object_attention)]
    rows = [["scene", name, round(float(sim), 3)] for name, sim in prediction.scene_attributes]
    rows += [["object", name, round(float(sim), 3)] for name, sim in prediction.object_attributes]
    return Understanding(dict(prediction.probs), overlays[0], overlays[1], rows)


def generate_images(pipe, emotion: Any, num_images: Any = 2, seed: Any = 0, steps: Any = None,
                    guidance: Any = None, progress: ProgressFn | None = None) -> list[tuple[Image.Image, str]]:
    """Images evoking one emotion, from the emotion space.

    Args:
        pipe: a loaded ``UniEmoPipeline``.
        emotion: one of ``pipe.emotions``.
        num_images: 1 to ``demo_limits(pipe).max_images``; image i uses seed ``seed + i``.
        seed: 0 to ``MAX_SEED - (num_images - 1)``, so that every caption's seed is itself a valid seed.
        steps: denoising steps, 1 to ``demo_limits(pipe).max_steps``; ``None`` for the model's default.
        guidance: classifier-free guidance scale, 0 to ``MAX_GUIDANCE``; ``None`` for the default.
        progress: called with ``(steps done, steps in total)`` during sampling.

    Returns:
        ``[(image, caption), ...]`` with captions such as ``"awe · seed 3"``.
    """
    emotion = check_emotion(pipe, emotion)
    num_images, seed, steps, guidance, size = _sampling(pipe, num_images, seed, steps, guidance)
    counter = _StepCounter(progress, 1, steps)
    images = pipe.generate(emotion, num_images=num_images, seed=seed, num_inference_steps=steps,
                           guidance_scale=guidance, size=size, callback=counter.callback)
    return [(for_display(im), f"{emotion} · seed {seed + i}") for i, im in enumerate(images)]


def transfer_images(pipe, emotion: Any, noun: Any, num_images: Any = 1, seed: Any = 0, steps: Any = None,
                    guidance: Any = None, progress: ProgressFn | None = None
                    ) -> tuple[list[tuple[Image.Image, str]], list[tuple[Image.Image, str]]]:
    """An emotion carried onto a neutral noun, and the noun alone with the same seeds for comparison.

    Args:
        pipe: a loaded ``UniEmoPipeline``.
        emotion: one of ``pipe.emotions``.
        noun: an object, e.g. one of ``pipe.transfer_nouns`` (for a full model EmoGen's neutral objects: bench,
            book, cup, lamp, room, sofa, street), or any short text up to ``MAX_NOUN_CHARS`` characters.
        num_images, seed, steps, guidance, progress: as in ``generate_images``; ``guidance=None`` is the
            model's transfer guidance (``default_settings(pipe)["transfer_guidance_scale"]``).

    Returns:
        ``(transferred, neutral)``: two galleries of ``(image, caption)``, pairwise with the same seeds.
    """
    emotion = check_emotion(pipe, emotion)
    noun = check_noun(noun, pipe.transfer_nouns)
    num_images, seed, steps, guidance, size = _sampling(pipe, num_images, seed, steps, guidance,
                                                        "transfer_guidance_scale")
    counter = _StepCounter(progress, 2, steps)
    settings = {"num_images": num_images, "seed": seed, "num_inference_steps": steps, "guidance_scale": guidance,
                "size": size, "callback": counter.callback}
    transferred = pipe.transfer(emotion, noun, **settings)
    counter.next_render()
    neutral = pipe.neutral(noun, **settings)
    short = noun if len(noun) <= 40 else noun[:37] + "..."
    return ([(for_display(im), f"{emotion} {short} · seed {seed + i}") for i, im in enumerate(transferred)],
            [(for_display(im), f"{short} (neutral) · seed {seed + i}") for i, im in enumerate(neutral)])


def fuse_images(pipe, emotion_a: Any, emotion_b: Any, weight: Any = 0.5, num_images: Any = 1, seed: Any = 0,
                steps: Any = None, guidance: Any = None, sweep: Any = False, progress: ProgressFn | None = None
                ) -> tuple[list[tuple[Image.Image, str]], list[tuple[Image.Image, str]]]:
    """Two emotions fused with a weight, c = w * c(a) + (1 - w) * c(b), and optionally a sweep over w.

    Args:
        pipe: a loaded ``UniEmoPipeline``.
        emotion_a, emotion_b: two of ``pipe.emotions`` (may be the same).
        weight: w in [0, 1]; 1 gives ``emotion_a`` alone, 0 ``emotion_b`` alone.
        num_images, seed, steps, guidance, progress: as in ``generate_images``.
        sweep: also render one image per weight in ``SWEEP_WEIGHTS`` with the same seed.

    Returns:
        ``(fused, sweep_strip)``: galleries of ``(image, caption)``; ``sweep_strip`` is empty without ``sweep``.
    """
    emotion_a, emotion_b = check_emotion(pipe, emotion_a), check_emotion(pipe, emotion_b)
    weight = _number(weight, "the weight", 0.0, 1.0)
    if not isinstance(sweep, bool):
        raise ValueError(f"sweep must be true or false, got {sweep!r}")
    num_images, seed, steps, guidance, size = _sampling(pipe, num_images, seed, steps, guidance)
    counter = _StepCounter(progress, 1 + (len(SWEEP_WEIGHTS) if sweep else 0), steps)
    settings = {"num_inference_steps": steps, "guidance_scale": guidance, "size": size,
                "callback": counter.callback}
    fused = pipe.fuse(emotion_a, emotion_b, weight=weight, num_images=num_images, seed=seed, **settings)
    gallery = [(for_display(im), f"{weight:.2f}·{emotion_a} + {1 - weight:.2f}·{emotion_b} · seed {seed + i}")
               for i, im in enumerate(fused)]
    strip = []
    if sweep:
        for w in SWEEP_WEIGHTS:
            counter.next_render()
            image = pipe.fuse(emotion_a, emotion_b, weight=w, num_images=1, seed=seed, **settings)[0]
            strip.append((for_display(image), f"w = {w:.2f}"))
    return gallery, strip


# ------------------------------------------------------------------------------------------ the model


# An absolute path inside free text (``/home/me/sd-1.5``, ``~/models/x``, ``C:\\models\\x``); relative ones such
# as ``diffusion/`` and ``train/tiny_world.py`` are the folder's own layout and stay.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/\\~-])(?:~|[A-Za-z]:)?[/\\][^\s`'\"()\[\]<>]+")


def without_paths(text: Any) -> str:
    """``text`` with every absolute path replaced by its last component: what a model folder records (base
    models, the diffusion source) may name folders on the machine that trained it or on this server."""
    return _ABSOLUTE_PATH.sub(lambda m: re.split(r"[/\\]", m.group(0).rstrip("/\\"))[-1] or "...", str(text))


def model_name(pipe) -> str:
    """A short name for the loaded model, never a path on the server: the Hub repo id it came from
    (``owner/name``, read from the Hub cache's ``models--owner--name/snapshots/<revision>`` layout), else its
    folder's name (with the run's name for a training run's ``final`` or ``checkpoint-N`` folder)."""
    if pipe.info.get("name"):
        return without_paths(pipe.info["name"])
    path = Path(str(pipe.info.get("path", "")))
    parts = path.parts
    if len(parts) >= 3 and parts[-2] == "snapshots" and parts[-3].startswith("models--"):
        owner, _, name = parts[-3].removeprefix("models--").partition("--")
        return f"{owner}/{name}"
    if path.name == "final" or path.name.startswith("checkpoint-"):
        return f"{path.parent.name}/{path.name}" if path.parent.name else path.name
    return path.name or "unnamed model"


def model_summary(pipe) -> str:
    """One line (Markdown) saying which model is loaded, for the top of the page."""
    device = getattr(getattr(pipe, "device", None), "type", "cpu")
    limits = demo_limits(pipe)
    return (f"**Model:** {model_name(pipe)} · {len(pipe.emotions)} emotions · "
            f"generates {limits.size}x{limits.size} px · running on {device}")


EMOSHAPES_BUILDER = "train/tiny_world.py"  # the only script that trains on EmoShapes alone


def trained_on_emoshapes(pipe) -> bool:
    """True for UniEmo-Tiny: a model that learned only EmoShapes' synthetic scenes.

    The folder's own record decides, not its name (a copy may be called anything): ``uniemo.json`` says
    ``"stage1": "train/tiny_world.py"`` (the builder that writes UniEmo-Tiny; ``train/joint.py`` writes the
    stage-1 folder there instead), or its ``base_models`` say they were pretrained on EmoShapes.
    """
    info = getattr(pipe, "info", {}) or {}
    if str(info.get("stage1", "")).replace("\\", "/").endswith(EMOSHAPES_BUILDER):
        return True
    return any("emoshapes" in str(value).lower() for value in dict(info.get("base_models") or {}).values())


def understand_notice(pipe) -> str:
    """A plain warning for the Understand tab when the model knows only EmoShapes (``trained_on_emoshapes``),
    else ""."""
    if not trained_on_emoshapes(pipe):
        return ""
    return (f"**This model knows only EmoShapes' synthetic scenes.** {model_name(pipe)} is UniEmo-Tiny: it "
            f"learned emotions from EmoShapes, a made-up world of coloured shapes on simple backgrounds drawn at "
            f"{pipe.classifier.config.image_size} px, and from nothing else. For a photo or any other real image "
            "its answer is not to be trusted; the examples below are EmoShapes scenes.")


def model_fingerprint(pipe) -> str:
    """A short, filesystem-safe id for the loaded weights (folder name + hash of manifest, path, file times).

    Used to keep cached example outputs of one model from being served for another.
    """
    root = Path(pipe.info.get("path", "."))
    digest = hashlib.sha256(json.dumps(pipe.info, sort_keys=True, default=str).encode())
    for weights in sorted(root.rglob("*.safetensors")) if root.is_dir() else []:
        stat = weights.stat()
        digest.update(f"{weights.relative_to(root)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in model_name(pipe))[:40]
    return f"{safe}-{digest.hexdigest()[:10]}"


def find_report(pipe) -> Path | None:
    """The measured-numbers file for the loaded model, if one exists.

    ``report.json`` in the model folder comes first. ``assets/report.json`` is used only when the model is the
    bundled one (its folder lies under ``assets/``), so numbers of one model are never shown for another.
    """
    root = Path(pipe.info.get("path", ""))
    candidates = [root / "report.json"]
    try:
        if root.resolve().is_relative_to(ASSETS_DIR):
            candidates.append(ASSETS_DIR / "report.json")
    except OSError:
        pass
    return next((p for p in candidates if p.is_file()), None)


def _numbers(tree: Any, prefix: str = "", depth: int = 2) -> list[tuple[str, float | int]]:
    """Numeric leaves of a JSON tree as ("a / b", value), at most ``depth`` keys deep. Lists (confusion matrices)
    and deeper breakdowns (per class, per noun) stay in the file: they don't read as table rows."""
    rows: list[tuple[str, float | int]] = []
    if isinstance(tree, dict) and depth > 0:
        for key, value in tree.items():
            rows += _numbers(value, f"{prefix} / {key}" if prefix else str(key), depth - 1)
    elif isinstance(tree, (int, float)) and not isinstance(tree, bool) and math.isfinite(tree):
        rows.append((prefix, tree))
    return rows


def _shown_path(path: Path) -> str:
    """A file's name for the page: relative to the repository when it is in it, else ``folder/file``."""
    try:
        return Path(path).resolve().relative_to(REPO_DIR).as_posix()
    except (OSError, ValueError):
        return f"{Path(path).parent.name}/{Path(path).name}".lstrip("/")


def report_markdown(path: Path | None, max_rows: int = 60) -> str:
    """The numbers of a JSON report as a Markdown table, or a sentence saying there are none."""
    if path is None:
        return "No measured numbers are bundled with this model (no `report.json`), so none are shown."
    where = _shown_path(path)
    try:
        rows = _numbers(json.loads(Path(path).read_text()))
    except OSError as e:  # its message would name the full path
        return f"The report `{where}` could not be read ({e.strerror or type(e).__name__}); no numbers are shown."
    except ValueError as e:
        return f"The report `{where}` could not be read ({e}); no numbers are shown."
    if not rows:
        return f"The report `{where}` holds no numbers."
    lines = [f"Measured numbers from `{where}` (breakdowns per class and per object are in the file):", "",
             "| measure | value |", "|---|---|"]
    for key, value in rows[:max_rows]:
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        lines.append(f"| {key.replace('|', '/')} | {shown} |")
    if len(rows) > max_rows:
        lines.append(f"\n({len(rows) - max_rows} more in the file.)")
    return "\n".join(lines)


def about_markdown(pipe) -> str:
    """The About panel: model, emotions, base models, measured numbers (only if a report exists), paper."""
    info = pipe.info
    config = pipe.classifier.config
    base = str(info.get("diffusion", ""))
    diffusion = ("bundled with the model (its `diffusion/` folder)" if base.startswith("diffusion")
                 else f"`{without_paths(base)}`" if base else "not recorded")
    limits = demo_limits(pipe)
    lines = [
        "## About",
        "",
        model_summary(pipe),
        "",
        f"**Emotions ({len(pipe.emotions)}):** {', '.join(pipe.emotions)}",
        "",
        f"**Components:** {', '.join(info.get('components', [])) or 'not recorded'}",
        "",
        "**Base models**",
        "",
        # what the model folder itself records (uniemo.json "base_models"), then what its configs say
        *[f"- {without_paths(name)}: {without_paths(value)}"
          for name, value in dict(info.get("base_models") or {}).items()],
        (f"- Understanding: a ViT ({getattr(config, 'preset', '?')} preset: {config.image_size} px input, "
         f"{config.patch_size} px patches, width {config.width}, {config.layers} layers) with "
         f"{config.num_scene_queries} scene and {config.num_object_queries} object expert queries."),
        (f"- Generation: Stable Diffusion, {diffusion}, at {pipe.resolution} px; default sampler "
         f"{pipe.defaults['scheduler']}, {pipe.defaults['num_inference_steps']} steps, "
         f"guidance {pipe.defaults['guidance_scale']}."),
        "",
    ]
    if limits.notice:
        lines += [f"**On this machine:** {limits.notice}", ""]
    lines += [
        "**Measured numbers**",
        "",
        report_markdown(find_report(pipe)),
        "",
        ("**Paper:** Yijie Zhu, Lingsen Zhang, Zitong Yu, Rui Shao, Tao Tan, Liqiang Nie. *UniEmo: Unifying "
         "Emotional Understanding and Generation with Learnable Expert Queries.* IEEE Transactions on Image "
         "Processing (TIP), 2026. [arXiv:2507.23372](https://arxiv.org/abs/2507.23372). This demo is an "
         "independent re-implementation."),
    ]
    return "\n".join(lines)
