"""EmoShapes' composition: a scene's background, the objects on it, then random lighting."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from uniemo.data.emoshapes.painters import OBJECT_PAINTERS, SCENE_PAINTERS
from uniemo.data.emoshapes.rule import OBJECTS, SCENES

MAX_OBJECTS_LIMIT = 3  # three objects of 30 % side still fit side by side; more would overlap heavily
# Object side as a fraction of the image side, by number of objects: as large as still fits side by side.
OBJECT_SIZES: dict[int, tuple[float, float]] = {1: (0.4, 0.55), 2: (0.3, 0.42), 3: (0.28, 0.33)}
SUPERSAMPLE = 4  # draw at 4x and box-reduce: anti-aliased edges without a per-shape AA routine


def _object_layer(noun: str, side: int, r: np.random.Generator) -> Image.Image:
    """The object on a transparent square, with a contrasting rim and a small random rotation.

    The rim (a dilated alpha mask, light for dark objects and dark for light ones) keeps a black
    spider readable on a night city and a white ghost readable on snow.
    """
    layer = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    OBJECT_PAINTERS[noun](ImageDraw.Draw(layer), side, r)
    pixels = np.asarray(layer)[::3, ::3].astype(np.float32)  # a subsample is plenty for a mean
    alpha = pixels[..., 3] > 128
    luminance = float((pixels[..., :3][alpha] @ np.array([0.299, 0.587, 0.114], np.float32)).mean())
    rim = (235, 235, 235) if luminance < 90 else (25, 20, 20)
    outline = Image.new("RGBA", (side, side), (*rim, 255))
    outline.putalpha(Image.fromarray(_dilate(np.asarray(layer.getchannel("A")), max(1, side // 40))))
    outline.alpha_composite(layer)
    # NEAREST is enough: the canvas is box-reduced by SUPERSAMPLE afterwards, which smooths the steps.
    return outline.rotate(float(r.uniform(-15, 15)), resample=Image.Resampling.NEAREST, expand=True)


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Grey-level dilation by a (2 radius + 1)^2 square, as two separable running maxima (fast in numpy)."""
    out = mask.copy()
    for axis in (0, 1):
        src = out.copy()
        for k in range(1, radius + 1):
            lo = [slice(None)] * 2
            hi = [slice(None)] * 2
            lo[axis], hi[axis] = slice(k, None), slice(None, -k)
            np.maximum(out[tuple(lo)], src[tuple(hi)], out=out[tuple(lo)])
            np.maximum(out[tuple(hi)], src[tuple(lo)], out=out[tuple(hi)])
    return out


def render(scene: str, objects: Sequence[str], rng: np.random.Generator, image_size: int = 64) -> Image.Image:
    """Draw a composition: the scene's background, the objects on it, then random lighting.

    Objects are 40-55 % of the image side when alone, 30-42 % when two share the image (each in its own
    half), 28-33 % when three do, so that every object survives a downscale to 32 px.

    Args:
        scene: one of ``SCENES``.
        objects: 0..``MAX_OBJECTS_LIMIT`` names from ``OBJECTS`` (an empty list draws the bare scene).
        rng: the only source of randomness; the same generator state gives the same image.
        image_size: output side in pixels (8..64).

    Returns:
        An RGB image of ``image_size`` x ``image_size``.
    """
    if scene not in SCENE_PAINTERS:
        raise ValueError(f"unknown scene {scene!r}; expected one of {', '.join(SCENES)}")
    unknown = [o for o in objects if o not in OBJECT_PAINTERS]
    if unknown:
        raise ValueError(f"unknown object(s) {unknown}; expected names from {', '.join(OBJECTS)}")
    if len(objects) > MAX_OBJECTS_LIMIT:
        raise ValueError(f"at most {MAX_OBJECTS_LIMIT} objects per image, got {len(objects)}")
    check_size(image_size)
    w = image_size * SUPERSAMPLE
    canvas = SCENE_PAINTERS[scene](w, rng)
    n = len(objects)
    slots = rng.permutation(n) if n else []  # which horizontal slot each object gets
    for noun, slot in zip(objects, slots):
        frac = rng.uniform(*OBJECT_SIZES[n])
        left, right = slot / n + frac / 2, (slot + 1) / n - frac / 2
        cx = rng.uniform(left, right) if right > left else (slot + 0.5) / n
        cy = rng.uniform(frac / 2 + 0.02, 1 - frac / 2 - 0.02)
        layer = _object_layer(noun, max(8, int(frac * w)), rng)
        canvas.paste(layer, (int(cx * w - layer.width / 2), int(cy * w - layer.height / 2)), mask=layer)
    image = canvas.reduce(SUPERSAMPLE)
    # Lighting: global contrast and brightness, plus a faint colour cast.
    pixels = np.asarray(image, dtype=np.float32)
    contrast, brightness = rng.uniform(0.8, 1.2), rng.uniform(0.8, 1.15)
    cast = rng.uniform(0.95, 1.05, size=3).astype(np.float32)
    mean = pixels.mean()
    pixels = ((pixels - mean) * contrast + mean) * brightness * cast
    return Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8))


def check_size(image_size: int) -> None:
    """Raise ``ValueError`` unless ``image_size`` is a side EmoShapes draws at (8..64 px)."""
    if not 8 <= image_size <= 64:
        raise ValueError(f"EmoShapes image_size must be in 8..64, got {image_size}")

