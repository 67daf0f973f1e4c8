"""The demo's handlers: plain functions from raw inputs to plain Python and PIL values.

Every handler takes the ``UniEmoPipeline`` as its first argument, validates its other arguments itself (they
may come straight from the ``gradio_client`` API, which bypasses the page's slider limits) and raises
``ValueError`` with a message that says what is allowed. Nothing here imports gradio: ``demo/ui.py`` binds
these functions to components and turns ``ValueError`` into ``gr.Error`` and a status line in the tab.

Handlers and the tabs they serve:

    classify_image   Understand  probabilities, scene/object attention overlays, nearest attributes
    generate_images  Generate    images evoking an emotion (emotion space -> condition -> SD)
    transfer_images  Transfer    the emotion carried onto a neutral noun, beside the noun alone (same seeds)
    fuse_images      Fuse        w * c(a) + (1 - w) * c(b), plus an optional strip sweeping w
    about_markdown   About       the loaded model, its emotions, base models, measured numbers, the paper

The rest of the demo lives beside this module: the request limits (``demo.limits``), upload safety and image
opening (``demo.uploads``, which ``classify_image`` reads through, so a path outside the page's folders is
refused) and what the page says about the model (``demo.about``). Their public names are also reachable here
(``handlers.read_image``, ``handlers.about_markdown``, ...), the page's single point of entry.

Gallery handlers return ``[(image, caption), ...]``; images smaller than ``DISPLAY_SIDE`` are enlarged by an
integer factor with nearest-neighbour filtering, so a 32 px UniEmo-Tiny image shows its real pixels at a
visible size (and the original is recovered exactly by taking every k-th pixel).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from PIL import Image

from demo.about import (
    about_markdown,
    find_report,
    is_emosym,
    model_fingerprint,
    model_name,
    model_summary,
    report_markdown,
    trained_on_emoshapes,
    understand_notice,
    without_paths,
)
from demo.limits import (
    CPU_MAX_STEPS,
    DISPLAY_SIDE,
    MAX_OVERLAY_SIDE,
    MAX_SEED,
    SWEEP_WEIGHTS,
    DemoLimits,
    demo_limits,
)
from demo.uploads import (
    ASSETS_DIR,
    EXAMPLES_DIR,
    MAX_INPUT_BYTES,
    MAX_INPUT_PIXELS,
    MAX_WORKING_SIDE,
    NOT_UPLOADED,
    check_uploaded,
    read_image,
)
from uniemo.constants import NEUTRAL_NOUNS
from uniemo.data.base import upright
from uniemo.pipeline import MAX_GUIDANCE, MAX_NOUN_CHARS
from uniemo.viz import attention_overlay

ProgressFn = Callable[[int, int], None]

# The page (demo/ui.py), its tests and scripts reach the whole demo through this module.
__all__ = [
    # the handlers and their validation
    "Understanding", "check_emotion", "check_noun", "classify_image", "default_settings", "for_display",
    "fuse_images", "generate_images", "transfer_images",
    # demo.limits
    "CPU_MAX_STEPS", "DISPLAY_SIDE", "MAX_OVERLAY_SIDE", "MAX_SEED", "SWEEP_WEIGHTS", "DemoLimits", "demo_limits",
    # demo.uploads
    "ASSETS_DIR", "EXAMPLES_DIR", "MAX_INPUT_BYTES", "MAX_INPUT_PIXELS", "MAX_WORKING_SIDE", "NOT_UPLOADED",
    "check_uploaded", "read_image", "upright",
    # demo.about
    "about_markdown", "find_report", "model_fingerprint", "model_name", "model_summary", "report_markdown",
    "trained_on_emoshapes", "understand_notice", "without_paths",
]


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


# -------------------------------------------------------------------------------------------- display


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
        attributes: rows ``[query kind, attribute name, cosine similarity]``, scene rows first; for an EmoSym
            model ``["rationale", sentence, cosine similarity]`` (and both images are the plain view).
    """

    probs: dict[str, float]
    scene_overlay: Image.Image
    object_overlay: Image.Image
    attributes: list[list[Any]]


def classify_image(pipe, image: Any, top_attributes: int = 3, cmap: str = "jet",
                   alpha: float = 0.5, folders: Sequence[str | os.PathLike] | None = None,
                   reasoner=None) -> Understanding:
    """Emotion probabilities, attention overlays and nearest attributes for one image.

    Args:
        pipe: a loaded ``UniEmoPipeline``.
        image: an image file path or PIL image (see ``read_image`` for what is accepted).
        top_attributes: how many nearest scene and object attributes to list (1-10).
        cmap: matplotlib colormap of the overlays.
        alpha: heat-map weight of the overlays, in [0, 1].
        folders: the only folders a path may lie in (see ``read_image``); the page passes its upload and
            example folders.
        reasoner: an ``EmoSymPipeline`` served beside a UniEmo ``pipe`` (the two bundled models): its
            rationales follow the attribute rows, as ``["rationale (EmoSym: <its label>)", sentence, cosine]``.

    Returns:
        An ``Understanding``; the overlays are squares of ``DISPLAY_SIDE`` to ``MAX_OVERLAY_SIDE`` pixels.

    Raises:
        ValueError: for an unusable image or argument.
    """
    top_attributes = _integer(top_attributes, "the number of attributes", 1, 10)
    # this module's MAX_INPUT_BYTES, read at call time: setting handlers.MAX_INPUT_BYTES changes the limit
    picture = read_image(image, folders, MAX_INPUT_BYTES)
    prediction = pipe.classify(picture, top_attributes=top_attributes)
    view = prediction.view
    side = min(max(DISPLAY_SIDE, min(view.size)), MAX_OVERLAY_SIDE)
    if prediction.scene_attention is None:  # EmoSym: no attention maps; its answer says why in a sentence
        plain = view.convert("RGB").resize((side, side), Image.BICUBIC)
        rows = [["rationale", sentence, round(float(sim), 3)] for sentence, sim in prediction.rationales]
        return Understanding(dict(prediction.probs), plain, plain, rows)
    overlays = [attention_overlay(view, att, cmap=cmap, alpha=alpha, size=side)
                for att in (prediction.scene_attention, prediction.object_attention)]
    rows = [["scene", name, round(float(sim), 3)] for name, sim in prediction.scene_attributes]
    rows += [["object", name, round(float(sim), 3)] for name, sim in prediction.object_attributes]
    if reasoner is not None:
        why = reasoner.classify(picture, top_rationales=top_attributes)
        rows += [[f"rationale (EmoSym: {why.label})", sentence, round(float(sim), 3)]
                 for sentence, sim in why.rationales]
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

