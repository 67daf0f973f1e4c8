"""EmoShapes: the procedural world in which UniEmo-Tiny is trained on a CPU (METHOD.md section 10).

Every image is a *scene* drawn as a background with one or more *objects* drawn on it. Its emotion is
a fixed rule of the two, so that the classifier's scene and object expert queries have something to
learn, and the set is written in EmoSet's on-disk layout (``info.json``, ``{train,val,test}.json``,
``image/<emotion>/<emotion>_NNNNN.jpg``, ``annotation/<emotion>/<emotion>_NNNNN.json``), so every
EmoSet code path runs on it unchanged.

The rule: the 12 scenes fall into 4 scene groups (3 each) and the 16 objects into 4 object groups; the emotion
is ``EMOTION_TABLE[scene group][object group of objects[0]]``::

                 festive      nature        threat      eerie
    cozy         amusement    contentment   disgust     sadness
    vast         excitement   awe           fear        contentment
    dark         sadness      fear          anger       amusement
    harsh        anger        disgust       excitement  awe

Each emotion fills exactly two cells, in different rows and different columns, so a scene alone
leaves four emotions possible and an object alone leaves four too; only the pair decides. Valence is
not decided by either alone either (every row and every column mixes positive and negative cells).
The generator draws every object of an image from the same object group, so the emotion does not
depend on which object is "first". With probability ``label_noise`` the stored label is replaced by a
uniformly drawn *other* emotion; the annotation keeps the rule's label as ``true_emotion``.

Everything is deterministic from ``EmoShapesConfig.seed``: each split has its own random streams and
each image its own generator, so the same config gives byte-identical files, and changing ``num_train``
leaves the val and test images unchanged (only their file numbers shift).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from uniemo.constants import EMOTIONS

# ----------------------------------------------------------------------------------------------------
# Vocabularies and the rule
# ----------------------------------------------------------------------------------------------------

SCENE_GROUPS: dict[str, tuple[str, ...]] = {
    "cozy": ("room", "meadow", "library"),
    "vast": ("sky", "sea", "snow"),
    "dark": ("night_city", "cemetery", "forest"),
    "harsh": ("fire", "desert", "storm"),
}
OBJECT_GROUPS: dict[str, tuple[str, ...]] = {
    "festive": ("balloon", "cake", "gift", "heart"),
    "nature": ("flower", "sun", "tree", "butterfly"),
    "threat": ("knife", "spider", "snake", "bomb"),
    "eerie": ("skull", "ghost", "candle", "coffin"),
}
SCENES: tuple[str, ...] = tuple(s for group in SCENE_GROUPS.values() for s in group)
OBJECTS: tuple[str, ...] = tuple(o for group in OBJECT_GROUPS.values() for o in group)
SCENE_GROUP_OF: dict[str, str] = {s: g for g, members in SCENE_GROUPS.items() for s in members}
OBJECT_GROUP_OF: dict[str, str] = {o: g for g, members in OBJECT_GROUPS.items() for o in members}

# EMOTION_TABLE[scene group][object group] -> emotion; each emotion twice, in distinct rows and columns.
EMOTION_TABLE: dict[str, dict[str, str]] = {
    "cozy": {"festive": "amusement", "nature": "contentment", "threat": "disgust", "eerie": "sadness"},
    "vast": {"festive": "excitement", "nature": "awe", "threat": "fear", "eerie": "contentment"},
    "dark": {"festive": "sadness", "nature": "fear", "threat": "anger", "eerie": "amusement"},
    "harsh": {"festive": "anger", "nature": "disgust", "threat": "excitement", "eerie": "awe"},
}
# The inverse: the two (scene group, object group) cells of each emotion, in table order.
CELLS_OF: dict[str, tuple[tuple[str, str], ...]] = {
    e: tuple((sg, og) for sg, row in EMOTION_TABLE.items() for og, cell in row.items() if cell == e)
    for e in EMOTIONS
}
MAX_OBJECTS_LIMIT = 3  # three objects of 30 % side still fit side by side; more would overlap heavily
# Object side as a fraction of the image side, by number of objects: as large as still fits side by side.
OBJECT_SIZES: dict[int, tuple[float, float]] = {1: (0.4, 0.55), 2: (0.3, 0.42), 3: (0.28, 0.33)}
SUPERSAMPLE = 4  # draw at 4x and box-reduce: anti-aliased edges without a per-shape AA routine


def emotion_of(scene: str, objects: Sequence[str]) -> str:
    """The rule's emotion of a composition (before label noise).

    Args:
        scene: one of ``SCENES``.
        objects: one or more of ``OBJECTS``; the first one is the "main" object the rule reads.

    Returns:
        An emotion name from ``EMOTIONS``.
    """
    if scene not in SCENE_GROUP_OF:
        raise ValueError(f"unknown scene {scene!r}; expected one of {', '.join(SCENES)}")
    if not objects:
        raise ValueError("emotion_of needs at least one object")
    if objects[0] not in OBJECT_GROUP_OF:
        raise ValueError(f"unknown object {objects[0]!r}; expected one of {', '.join(OBJECTS)}")
    return EMOTION_TABLE[SCENE_GROUP_OF[scene]][OBJECT_GROUP_OF[objects[0]]]


def _with_article(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def caption_of(scene: str, objects: Sequence[str]) -> str:
    """The composition as a caption, e.g. ``"a balloon and a cake in a room"``, ``"a skull in a cemetery"``.

    Underscores in names become spaces (``night_city`` -> ``"in a night city"``).
    """
    nouns = [_with_article(o.replace("_", " ")) for o in objects]
    things = nouns[0] if len(nouns) == 1 else ", ".join(nouns[:-1]) + " and " + nouns[-1]
    return f"{things} in {_with_article(scene.replace('_', ' '))}"


def sample_composition(rng: np.random.Generator, emotion: str, max_objects: int = 2) -> tuple[str, list[str]]:
    """Draw a (scene, objects) pair whose rule emotion is ``emotion``.

    One of the emotion's two table cells is chosen uniformly, then a scene of its scene group, then
    1..``max_objects`` distinct objects of its object group.
    """
    scene_group, object_group = CELLS_OF[emotion][int(rng.integers(2))]
    scene = SCENE_GROUPS[scene_group][int(rng.integers(len(SCENE_GROUPS[scene_group])))]
    count = int(rng.integers(1, max_objects + 1))
    members = OBJECT_GROUPS[object_group]
    objects = [members[int(i)] for i in rng.choice(len(members), size=count, replace=False)]
    return scene, objects


# ----------------------------------------------------------------------------------------------------
# Drawing helpers. Coordinates are fractions of the canvas (scenes) or of the object box (objects).
# ----------------------------------------------------------------------------------------------------

RGB = tuple[int, int, int]


def _jit(rng: np.random.Generator, color: Sequence[int], amount: int = 14) -> RGB:
    """A colour with independent per-channel jitter, so no two renders share exact colours."""
    noise = rng.integers(-amount, amount + 1, size=3)
    return tuple(min(255, max(0, int(c) + int(n))) for c, n in zip(color, noise))  # type: ignore[return-value]


def _gradient(size: int, top: Sequence[int], bottom: Sequence[int], height: int | None = None) -> Image.Image:
    """A top-to-bottom colour gradient, ``size`` wide and ``height`` (default ``size``) tall."""
    height = height or size
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    column = (1 - t) * np.asarray(top, np.float32) + t * np.asarray(bottom, np.float32)
    # One pixel wide, then stretched: far cheaper than filling every pixel in numpy.
    return Image.fromarray(column.astype(np.uint8)).resize((size, height), Image.Resampling.NEAREST)


def _band(img: Image.Image, y0: float, top: Sequence[int], bottom: Sequence[int]) -> None:
    """Paste a vertical gradient over the canvas below height ``y0`` (ground, sea, floor)."""
    w = img.width
    y = int(y0 * w)
    img.paste(_gradient(w, top, bottom, w - y), (0, y))


def _ellipse(d: ImageDraw.ImageDraw, s: float, cx: float, cy: float, rx: float, ry: float, fill, **kw) -> None:
    d.ellipse([(cx - rx) * s, (cy - ry) * s, (cx + rx) * s, (cy + ry) * s], fill=fill, **kw)


def _poly(d: ImageDraw.ImageDraw, s: float, pts: Sequence[tuple[float, float]], fill, **kw) -> None:
    d.polygon([(x * s, y * s) for x, y in pts], fill=fill, **kw)


def _line(d: ImageDraw.ImageDraw, s: float, pts: Sequence[tuple[float, float]], fill, width: float) -> None:
    d.line([(x * s, y * s) for x, y in pts], fill=fill, width=max(1, round(width * s)), joint="curve")


def _rect(d: ImageDraw.ImageDraw, s: float, x0: float, y0: float, x1: float, y1: float, fill, **kw) -> None:
    d.rectangle([x0 * s, y0 * s, x1 * s, y1 * s], fill=fill, **kw)


# ----------------------------------------------------------------------------------------------------
# Scenes: each a distinctive background (palette, horizon, texture) so a scene is recognisable at 16 px.
# ----------------------------------------------------------------------------------------------------


def _scene_sky(w: int, r: np.random.Generator) -> Image.Image:
    img = _gradient(w, _jit(r, (60, 120, 215)), _jit(r, (175, 215, 250)))
    d = ImageDraw.Draw(img)
    for _ in range(int(r.integers(2, 5))):  # clouds: clusters of white puffs
        cx, cy, k = r.uniform(0.05, 0.95), r.uniform(0.1, 0.9), r.uniform(0.07, 0.12)
        for dx in (-1.2, -0.5, 0.3, 1.1):
            dy, rx = r.uniform(-0.3, 0.2) * k, r.uniform(0.8, 1.1) * k
            _ellipse(d, w, cx + dx * k, cy + dy, rx, k * 0.7, (250, 250, 252))
    return img


def _scene_sea(w: int, r: np.random.Generator) -> Image.Image:
    horizon = r.uniform(0.28, 0.42)
    img = _gradient(w, _jit(r, (140, 190, 235)), _jit(r, (215, 230, 245)))
    _band(img, horizon, _jit(r, (30, 110, 170)), _jit(r, (5, 35, 95)))
    d = ImageDraw.Draw(img)
    for _ in range(int(r.integers(10, 16))):  # wave crests: short light strokes on the water
        x, y = r.uniform(-0.05, 0.95), r.uniform(horizon + 0.04, 0.98)
        _line(d, w, [(x, y), (x + 0.06, y - 0.02), (x + 0.12, y)], (170, 215, 240), 0.012)
    return img


def _scene_night_city(w: int, r: np.random.Generator) -> Image.Image:
    img = _gradient(w, _jit(r, (5, 5, 25), 5), _jit(r, (40, 30, 80)))
    d = ImageDraw.Draw(img)
    for _ in range(int(r.integers(12, 22))):
        _ellipse(d, w, r.uniform(0, 1), r.uniform(0, 0.45), 0.006, 0.006, (255, 255, 230))
    x = -r.uniform(0, 0.1)
    while x < 1.0:  # a skyline of dark blocks with lit windows
        bw, top = r.uniform(0.12, 0.22), r.uniform(0.35, 0.65)
        shade = int(r.integers(18, 40))
        _rect(d, w, x, top, x + bw, 1.0, (shade, shade, shade + 12))
        for wy in np.arange(top + 0.03, 0.97, 0.06):
            for wx in np.arange(x + 0.025, x + bw - 0.03, 0.05):
                if r.random() < 0.55:
                    _rect(d, w, wx, wy, wx + 0.022, wy + 0.025, (255, 215, 90))
        x += bw + r.uniform(0.0, 0.03)
    return img


def _scene_forest(w: int, r: np.random.Generator) -> Image.Image:
    img = _gradient(w, _jit(r, (25, 70, 40)), _jit(r, (10, 40, 20)))
    _band(img, r.uniform(0.82, 0.88), _jit(r, (55, 40, 20)), (35, 25, 10))
    d = ImageDraw.Draw(img)
    for _ in range(int(r.integers(7, 11))):  # conifers: trunk plus three stacked dark triangles
        x, h = r.uniform(-0.02, 1.02), r.uniform(0.5, 0.8)
        base = r.uniform(0.84, 0.95)
        _rect(d, w, x - 0.015, base - 0.15, x + 0.015, base, (70, 45, 20))
        green = _jit(r, (15, 85, 35), 10)
        for k in range(3):
            y = base - 0.12 - k * h * 0.25
            half = 0.09 - 0.02 * k
            _poly(d, w, [(x - half, y), (x + half, y), (x, y - h * 0.35)], green)
    return img


def _scene_fire(w: int, r: np.random.Generator) -> Image.Image:
    img = _gradient(w, _jit(r, (45, 5, 0), 8), _jit(r, (250, 110, 0)))
    d = ImageDraw.Draw(img)
    for color, lo, hi in (((230, 60, 0), 0.45, 0.75), ((255, 150, 0), 0.3, 0.55), ((255, 225, 70), 0.15, 0.3)):
        x = -0.05
        while x < 1.0:  # flame tongues in three layers, red tall behind, yellow short in front
            fw, h = r.uniform(0.1, 0.2), r.uniform(lo, hi)
            lean = r.uniform(-0.06, 0.06)
            _poly(d, w, [(x, 1.0), (x + fw * 0.3, 1 - h * 0.5), (x + fw / 2 + lean, 1 - h),
                         (x + fw * 0.7, 1 - h * 0.5), (x + fw, 1.0)], _jit(r, color, 10))
            x += fw * 0.7
    for _ in range(int(r.integers(6, 12))):  # embers
        _ellipse(d, w, r.uniform(0, 1), r.uniform(0.05, 0.5), 0.008, 0.008, (255, 190, 60))
    return img


def _scene_cemetery(w: int, r: np.random.Generator) -> Image.Image:
    horizon = r.uniform(0.6, 0.7)
    img = _gradient(w, _jit(r, (95, 95, 110)), _jit(r, (160, 160, 170)))
    _band(img, horizon, _jit(r, (50, 60, 45)), (25, 30, 20))
    d = ImageDraw.Draw(img)
    x = r.uniform(-0.05, 0.05)
    while x < 1.0:  # a row of tombstones and crosses standing on the horizon
        y = horizon + r.uniform(0.02, 0.2)
        stone = _jit(r, (140, 140, 145), 12)
        if r.random() < 0.3:
            _rect(d, w, x + 0.05, y - 0.2, x + 0.075, y, stone, outline=(60, 60, 65))
            _rect(d, w, x + 0.015, y - 0.16, x + 0.11, y - 0.135, stone, outline=(60, 60, 65))
        else:
            bw = r.uniform(0.09, 0.13)
            _rect(d, w, x, y - 0.14, x + bw, y, stone, outline=(60, 60, 65))
            _ellipse(d, w, x + bw / 2, y - 0.14, bw / 2, bw / 2, stone, outline=(60, 60, 65))
            _rect(d, w, x + 0.005, y - 0.14, x + bw - 0.005, y - 0.1, stone)
        x += r.uniform(0.17, 0.25)
    return img


def _scene_desert(w: int, r: np.random.Generator) -> Image.Image:
    img = _gradient(w, _jit(r, (245, 185, 110)), _jit(r, (255, 230, 175)))
    d = ImageDraw.Draw(img)
    y0 = r.uniform(0.45, 0.6)
    for k, color in enumerate(((235, 185, 105), (215, 155, 75), (195, 130, 60))):  # rolling dunes, far to near
        phase, amp, period = r.uniform(0, 6.3), r.uniform(0.03, 0.06), r.uniform(0.6, 1.0)
        base = y0 + k * 0.14
        pts = [(x, base + amp * math.sin(phase + 2 * math.pi * x / period)) for x in np.linspace(0, 1, 24)]
        _poly(d, w, [*pts, (1, 1), (0, 1)], _jit(r, color, 10))
    return img


def _scene_room(w: int, r: np.random.Generator) -> Image.Image:
    wall = _jit(r, (220, 195, 150))
    img = Image.new("RGB", (w, w), wall)
    d = ImageDraw.Draw(img)
    stripe = tuple(c - 25 for c in wall)
    step = r.uniform(0.1, 0.14)
    for x in np.arange(r.uniform(0, step), 1, step):  # wallpaper stripes
        _rect(d, w, x, 0, x + step * 0.35, 1, stripe)
    floor = r.uniform(0.68, 0.76)
    _rect(d, w, 0, floor, 1, 1, _jit(r, (125, 75, 35)))
    _rect(d, w, 0, floor - 0.02, 1, floor, (90, 55, 25))
    for y in np.arange(floor + 0.06, 1, 0.07):  # floorboards
        _line(d, w, [(0, y), (1, y)], (90, 55, 25), 0.008)
    wx = r.uniform(0.05, 0.65)  # a window: light-blue pane with a white cross frame
    _rect(d, w, wx, 0.1, wx + 0.28, 0.4, (175, 215, 245), outline=(250, 250, 250), width=max(1, w // 60))
    _rect(d, w, wx + 0.135, 0.1, wx + 0.145, 0.4, (250, 250, 250))
    _rect(d, w, wx, 0.245, wx + 0.28, 0.255, (250, 250, 250))
    return img


def _scene_library(w: int, r: np.random.Generator) -> Image.Image:
    img = Image.new("RGB", (w, w), _jit(r, (80, 50, 28), 10))
    d = ImageDraw.Draw(img)
    # Muted spines: the shelves must read as a texture behind the objects, not compete with them.
    palette = ((140, 40, 35), (40, 95, 55), (45, 60, 120), (170, 130, 50), (100, 35, 55), (185, 175, 150))
    offset = r.uniform(0.0, 0.08)
    for shelf in np.arange(0.27 + offset, 1.05, 0.27):  # shelves, each holding a row of coloured book spines
        x = r.uniform(-0.03, 0.03)
        while x < 1.0:
            bw, bh = r.uniform(0.035, 0.065), r.uniform(0.15, 0.22)
            _rect(d, w, x, shelf - bh, x + bw, shelf, _jit(r, palette[int(r.integers(len(palette)))], 12))
            x += bw + r.uniform(0.0, 0.015)
        _rect(d, w, 0, shelf, 1, shelf + 0.03, (150, 100, 55))
    return img


def _scene_meadow(w: int, r: np.random.Generator) -> Image.Image:
    horizon = r.uniform(0.3, 0.45)
    img = _gradient(w, _jit(r, (120, 190, 250)), _jit(r, (205, 235, 255)))
    _band(img, horizon, _jit(r, (130, 205, 70)), _jit(r, (60, 150, 30)))
    d = ImageDraw.Draw(img)
    for _ in range(int(r.integers(20, 35))):  # grass blades and tiny wild flowers
        x, y = r.uniform(0, 1), r.uniform(horizon + 0.03, 1.0)
        _line(d, w, [(x, y), (x + r.uniform(-0.02, 0.02), y - 0.04)], (40, 110, 20), 0.008)
    for _ in range(int(r.integers(12, 22))):
        color = ((255, 255, 255), (255, 235, 60), (255, 140, 200))[int(r.integers(3))]
        _ellipse(d, w, r.uniform(0, 1), r.uniform(horizon + 0.03, 1.0), 0.01, 0.01, color)
    return img


def _scene_snow(w: int, r: np.random.Generator) -> Image.Image:
    horizon = r.uniform(0.5, 0.62)
    img = _gradient(w, _jit(r, (170, 180, 200)), _jit(r, (220, 225, 235)))
    d = ImageDraw.Draw(img)
    x = -0.1
    while x < 1.0:  # blue-grey mountains with white caps behind the snowfield
        mw, mh = r.uniform(0.3, 0.5), r.uniform(0.15, 0.3)
        peak = (x + mw / 2, horizon - mh)
        _poly(d, w, [(x, horizon), peak, (x + mw, horizon)], _jit(r, (120, 135, 165), 10))
        _poly(d, w, [(peak[0] - mw * 0.12, peak[1] + mh * 0.25), peak, (peak[0] + mw * 0.12, peak[1] + mh * 0.25)],
              (245, 248, 252))
        x += mw * 0.7
    _band(img, horizon, (245, 248, 252), _jit(r, (215, 225, 240), 8))
    for _ in range(int(r.integers(25, 40))):  # falling snow
        _ellipse(d, w, r.uniform(0, 1), r.uniform(0, 1), 0.009, 0.009, (255, 255, 255))
    return img


def _scene_storm(w: int, r: np.random.Generator) -> Image.Image:
    img = _gradient(w, _jit(r, (35, 40, 50), 8), _jit(r, (95, 100, 110)))
    _band(img, r.uniform(0.85, 0.92), (35, 40, 35), (20, 22, 20))
    d = ImageDraw.Draw(img)
    for _ in range(int(r.integers(30, 45))):  # slanted rain streaks
        x, y = r.uniform(-0.1, 1.0), r.uniform(0.1, 0.95)
        _line(d, w, [(x, y), (x + 0.03, y + 0.08)], (165, 175, 195), 0.007)
    for _ in range(int(r.integers(1, 3))):  # lightning: a zigzag bolt from the clouds down
        x, y, pts = r.uniform(0.1, 0.9), 0.12, []
        while y < 0.85:
            pts.append((x, y))
            x, y = x + r.uniform(-0.09, 0.09), y + r.uniform(0.08, 0.16)
        _line(d, w, [*pts, (x, y)], (255, 250, 190), 0.022)
    for _ in range(int(r.integers(7, 11))):  # a heavy, low cloud bank across the top
        _ellipse(d, w, r.uniform(-0.05, 1.05), r.uniform(0.0, 0.12), r.uniform(0.12, 0.22), 0.1,
                 _jit(r, (55, 58, 68), 8))
    return img


SCENE_PAINTERS: dict[str, Callable[[int, np.random.Generator], Image.Image]] = {
    "room": _scene_room, "meadow": _scene_meadow, "sky": _scene_sky, "sea": _scene_sea, "snow": _scene_snow,
    "night_city": _scene_night_city, "cemetery": _scene_cemetery, "forest": _scene_forest,
    "fire": _scene_fire, "desert": _scene_desert, "library": _scene_library, "storm": _scene_storm,
}

# ----------------------------------------------------------------------------------------------------
# Objects: each a distinctive silhouette and colour, drawn into a transparent square box of side s.
# ----------------------------------------------------------------------------------------------------

DrawFn = Callable[[ImageDraw.ImageDraw, int, np.random.Generator], None]


def _obj_balloon(d: ImageDraw.ImageDraw, s: int, r: np.random.Generator) -> None:
    color = _jit(r, ((40, 110, 235), (150, 60, 210), (250, 140, 20))[int(r.integers(3))])
    _line(d, s, [(0.5, 0.7), (0.45, 0.8), (0.55, 0.9), (0.48, 1.0)], (70, 70, 70), 0.025)
    _poly(d, s, [(0.5, 0.66), (0.44, 0.74), (0.56, 0.74)], color)
    _ellipse(d, s, 0.5, 0.36, 0.28, 0.33, color)
    _ellipse(d, s, 0.4, 0.22, 0.06, 0.09, (255, 255, 255))


def _obj_cake(d: ImageDraw.ImageDraw, s: int, r: np.random.Generator) -> None:
    body = _jit(r, (245, 150, 185))
    _ellipse(d, s, 0.5, 0.9, 0.44, 0.07, (210, 210, 220))
    _rect(d, s, 0.12, 0.5, 0.88, 0.9, body)
    _rect(d, s, 0.12, 0.68, 0.88, 0.74, (120, 60, 30))  # chocolate layer
    _rect(d, s, 0.12, 0.45, 0.88, 0.55, (255, 255, 255))
    for x in (0.2, 0.35, 0.5, 0.65, 0.8):  # icing drips
        _ellipse(d, s, x, 0.56, 0.05, 0.04, (255, 255, 255))
    for x, color in zip((0.3, 0.5, 0.7), ((60, 160, 240), (250, 220, 40), (90, 200, 90))):  # candles
        _rect(d, s, x - 0.025, 0.25, x + 0.025, 0.45, color)
        _ellipse(d, s, x, 0.19, 0.03, 0.055, (255, 200, 40))


def _obj_gift(d: ImageDraw.ImageDraw, s: int, r: np.random.Generator) -> None:
    box = _jit(r, ((30, 160, 80), (200, 30, 60), (60, 90, 210))[int(r.integers(3))])
    lid = tuple(max(0, c - 35) for c in box)
    _rect(d, s, 0.14, 0.4, 0.86, 0.96, box)
    _rect(d, s, 0.08, 0.3, 0.92, 0.42, lid)
    _rect(d, s, 0.44, 0.3, 0.56, 0.96, (250, 215, 50))
    _rect(d, s, 0.14, 0.6, 0.86, 0.7, (250, 215, 50))
    _poly(d, s, [(0.5, 0.3), (0.2, 0.08), (0.3, 0.3)], (250, 215, 50))  # bow loops
    _poly(d, s, [(0.5, 0.3), (0.8, 0.08), (0.7, 0.3)], (250, 215, 50))


def _obj_heart(d: ImageDraw.ImageDraw, s: int, r: np.random.Generator) -> None:
    color = _jit(r, (225, 20, 55))
    _ellipse(d, s, 0.3, 0.32, 0.22, 0.22, color)
    _ellipse(d, s, 0.7, 0.32, 0.22, 0.22, color)
    _poly(d, s, [(0.1, 0.4), (0.9, 0.4), (0.5, 0.92)], color)
    _ellipse(d, s, 0.25, 0.27, 0.06, 0.05, (255, 170, 180))


def _obj_flower(d: ImageDraw.ImageDraw, s: int, r: np.random.Generator) -> None:
    petal = _jit(r, ((235, 60, 170), (250, 250, 250), (170, 80, 230))[int(r.integers(3))])
    _line(d, s, [(0.5, 0.4), (0.5, 1.0)], (40, 140, 40), 0.06)
    _ellipse(d, s, 0.64, 0.78, 0.12, 0.05, (40, 140, 40))
    for k in range(6):
        a = k * math.pi / 3
        _ellipse(d, s, 0.5 + 0.2 * math.cos(a), 0.35 + 0.2 * math.sin(a), 0.14, 0.14, petal, outline=(120, 40, 90))
    _ellipse(d, s, 0.5, 0.35, 0.12, 0.12, (255, 210, 20))


def _obj_sun(d: ImageDraw.ImageDraw, s: int, r: np.random.Generator) -> None:
    ray = _jit(r, (255, 150, 0))
    for k in range(12):
        a, b = k * math.pi / 6, math.pi / 18
        _poly(d, s, [(0.5 + 0.28 * math.cos(a - b), 0.5 + 0.28 * math.sin(a - b)),
                     (0.5 + 0.49 * math.cos(a), 0.5 + 0.49 * math.sin(a)),
                     (0.5 + 0.28 * math.cos(a + b), 0.5 + 0.28 * math.sin(a + b))], ray)
    _ellipse(d, s, 0.5, 0.5, 0.3, 0.3, _jit(r, (255, 220, 20)))


def _obj_tree(d: ImageDraw.ImageDraw, s: int, r: np.random.Generator) -> None:
    leaves = _jit(r, (70, 185, 50))
    _rect(d, s, 0.42, 0.5, 0.58, 1.0, (110, 65, 25))
    for cx, cy, rad in ((0.5, 0.3, 0.26), (0.28, 0.45, 0.2), (0.72, 0.45, 0.2)):
        _ellipse(d, s, cx, cy, rad, rad, leaves)
    for cx, cy in ((0.35, 0.3), (0.62, 0.22), (0.7, 0.5), (0.3, 0.52), (0.5, 0.44)):  # apples
        _ellipse(d, s, cx, cy, 0.045, 0.045, (220, 30, 30))


def _obj_butterfly(d: ImageDraw.ImageDraw, s: int, r: np.random.Generator) -> None:
    wing = _jit(r, ((250, 140, 20), (40, 150, 240), (245, 220, 30))[int(r.integers(3))])
    edge = (30, 20, 20)
    for side in (-1, 1):
        _ellipse(d, s, 0.5 + side * 0.22, 0.33, 0.2, 0.22, wing, outline=edge, width=max(1, s // 30))
        _ellipse(d, s, 0.5 + side * 0.18, 0.68, 0.14, 0.15, wing, outline=edge, width=max(1, s // 30))
        _ellipse(d, s, 0.5 + side * 0.26, 0.3, 0.05, 0.05, (255, 255, 255))
        _line(d, s, [(0.5, 0.22), (0.5 + side * 0.12, 0.04)], edge, 0.02)
    _ellipse(d, s, 0.5, 0.5, 0.04, 0.3, edge)


def _obj_knife(d: ImageDraw.ImageDraw, s: int, r: np.random.Generator) -> None:
    # Drawn along the diagonal (tip top-right) so that its length fills the box.
    def p(u: float, v: float) -> tuple[float, float]:  # u along the knife, v across it
        return 0.1 + 0.8 * u + 0.7 * v, 0.9 - 0.8 * u + 0.7 * v

    blade = [p(0.4, -0.1), p(0.8, -0.08), p(1.0, 0.02), p(0.4, 0.1)]  # straight back, curved edge to the tip
    _poly(d, s, blade, _jit(r, (205, 210, 220), 8), outline=(90, 90, 100))
    _poly(d, s, [p(0.36, -0.14), p(0.41, -0.14), p(0.41, 0.14), p(0.36, 0.14)], (60, 60, 60))
    _poly(d, s, [p(0.0, -0.07), p(0.36, -0.07), p(0.36, 0.07), p(0.0, 0.07)], (95, 50, 20))
    for u in (0.12, 0.27):
        _ellipse(d, s, *p(u, 0.0), 0.02, 0.02, (220, 200, 150))


def _obj_spider(d: ImageDraw.ImageDraw, s: int, r: np.random.Generator) -> None:
    body = _jit(r, (25, 20, 20), 8)
    for side in (-1, 1):
        for k, (ky, fy) in enumerate(((0.35, 0.08), (0.42, 0.3), (0.5, 0.62), (0.56, 0.92))):
            knee = (0.5 + side * (0.3 + 0.02 * k), ky - 0.12)
            _line(d, s, [(0.5, 0.45), knee, (0.5 + side * 0.47, fy)], body, 0.04)
    _ellipse(d, s, 0.5, 0.35, 0.12, 0.11, body)
    _ellipse(d, s, 0.5, 0.62, 0.18, 0.2, body)
    _poly(d, s, [(0.45, 0.56), (0.55, 0.56), (0.5, 0.63), (0.55, 0.7), (0.45, 0.7), (0.5, 0.63)], (220, 20, 20))


def _obj_snake(d: ImageDraw.ImageDraw, s: int, r: np.random.Generator) -> None:
    skin = _jit(r, (60, 160, 40))
    pts = [(0.1 + 0.7 * t, 0.85 - 0.6 * t + 0.15 * math.sin(t * 3.5 * math.pi)) for t in np.linspace(0, 1, 40)]
    for i, (x, y) in enumerate(pts):  # a chain of discs gives a smooth, round-ended body
        _ellipse(d, s, x, y, 0.075, 0.075, (240, 220, 40) if i % 6 == 3 else skin)
    hx, hy = pts[-1]
    _ellipse(d, s, hx + 0.04, hy - 0.02, 0.11, 0.085, skin)
    _ellipse(d, s, hx + 0.06, hy - 0.05, 0.022, 0.022, (0, 0, 0))
    _line(d, s, [(hx + 0.14, hy - 0.02), (hx + 0.22, hy - 0.02), (hx + 0.26, hy - 0.06)], (220, 20, 20), 0.02)


def _obj_bomb(d: ImageDraw.ImageDraw, s: int, r: np.random.Generator) -> None:
    _line(d, s, [(0.66, 0.3), (0.74, 0.16), (0.84, 0.13)], (150, 110, 60), 0.035)
    _poly(d, s, [(0.54, 0.28), (0.66, 0.2), (0.74, 0.32), (0.62, 0.4)], (110, 110, 120))
    _ellipse(d, s, 0.45, 0.6, 0.33, 0.33, _jit(r, (30, 30, 38), 8))
    _ellipse(d, s, 0.35, 0.48, 0.07, 0.05, (170, 170, 190))
    cx, cy = 0.86, 0.12  # the spark: a small yellow star at the fuse end
    star = [(cx + (0.11 if k % 2 == 0 else 0.045) * math.cos(k * math.pi / 5),
             cy + (0.11 if k % 2 == 0 else 0.045) * math.sin(k * math.pi / 5)) for k in range(10)]
    _poly(d, s, star, (255, 210, 30))


def _obj_skull(d: ImageDraw.ImageDraw, s: int, r: np.random.Generator) -> None:
    bone = _jit(r, (238, 232, 212), 8)
    _ellipse(d, s, 0.5, 0.4, 0.36, 0.34, bone)
    _rect(d, s, 0.3, 0.55, 0.7, 0.9, bone)
    for x in (0.34, 0.66):
        _ellipse(d, s, x, 0.47, 0.1, 0.11, (15, 10, 10))
    _poly(d, s, [(0.5, 0.58), (0.45, 0.68), (0.55, 0.68)], (15, 10, 10))
    for x in (0.38, 0.46, 0.54, 0.62):  # teeth gaps
        _line(d, s, [(x, 0.76), (x, 0.9)], (60, 50, 40), 0.02)


def _obj_ghost(d: ImageDraw.ImageDraw, s: int, r: np.random.Generator) -> None:
    sheet = _jit(r, (235, 240, 255), 8)
    _ellipse(d, s, 0.5, 0.38, 0.33, 0.33, sheet)
    _rect(d, s, 0.17, 0.38, 0.83, 0.85, sheet)
    for x in (0.28, 0.5, 0.72):  # the wavy hem
        _ellipse(d, s, x, 0.85, 0.11, 0.1, sheet)
    for x in (0.39, 0.61):
        _ellipse(d, s, x, 0.38, 0.06, 0.09, (20, 20, 40))
    _ellipse(d, s, 0.5, 0.6, 0.07, 0.09, (20, 20, 40))


def _obj_candle(d: ImageDraw.ImageDraw, s: int, r: np.random.Generator) -> None:
    _ellipse(d, s, 0.5, 0.2, 0.22, 0.24, (255, 230, 120, 90))  # soft glow (translucent)
    _ellipse(d, s, 0.5, 0.93, 0.3, 0.06, (200, 160, 60))
    _rect(d, s, 0.36, 0.36, 0.64, 0.93, _jit(r, (245, 238, 205), 8))
    _ellipse(d, s, 0.42, 0.42, 0.04, 0.08, (255, 250, 230))
    _line(d, s, [(0.5, 0.36), (0.5, 0.3)], (30, 30, 30), 0.02)
    _poly(d, s, [(0.5, 0.04), (0.58, 0.22), (0.5, 0.3), (0.42, 0.22)], (255, 200, 40))
    _poly(d, s, [(0.5, 0.14), (0.54, 0.24), (0.5, 0.29), (0.46, 0.24)], (255, 110, 0))


def _obj_coffin(d: ImageDraw.ImageDraw, s: int, r: np.random.Generator) -> None:
    wood = _jit(r, (100, 60, 30))
    _poly(d, s, [(0.36, 0.02), (0.64, 0.02), (0.8, 0.26), (0.66, 0.98), (0.34, 0.98), (0.2, 0.26)], wood,
          outline=(170, 120, 70), width=max(1, s // 25))
    _rect(d, s, 0.47, 0.2, 0.53, 0.7, (215, 190, 120))
    _rect(d, s, 0.36, 0.32, 0.64, 0.38, (215, 190, 120))


OBJECT_PAINTERS: dict[str, DrawFn] = {
    "balloon": _obj_balloon, "cake": _obj_cake, "gift": _obj_gift, "heart": _obj_heart,
    "flower": _obj_flower, "sun": _obj_sun, "tree": _obj_tree, "butterfly": _obj_butterfly,
    "knife": _obj_knife, "spider": _obj_spider, "snake": _obj_snake, "bomb": _obj_bomb,
    "skull": _obj_skull, "ghost": _obj_ghost, "candle": _obj_candle, "coffin": _obj_coffin,
}


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


# ----------------------------------------------------------------------------------------------------
# Composition
# ----------------------------------------------------------------------------------------------------


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
    _check_size(image_size)
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


def _check_size(image_size: int) -> None:
    if not 8 <= image_size <= 64:
        raise ValueError(f"EmoShapes image_size must be in 8..64, got {image_size}")


# ----------------------------------------------------------------------------------------------------
# The dataset
# ----------------------------------------------------------------------------------------------------

SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass
class EmoShapesConfig:
    """What defines an EmoShapes dataset; written to ``emoshapes.json`` next to the data.

    Args:
        image_size: image side in pixels (at most 64).
        num_train: number of training images.
        num_val: number of validation images.
        num_test: number of test images.
        seed: the only source of randomness.
        label_noise: probability that an image's label is replaced by a random other emotion.
        max_objects: each image holds 1..``max_objects`` objects (at most ``MAX_OBJECTS_LIMIT``).
        jpeg_quality: JPEG quality of the written images.
    """

    image_size: int = 64
    num_train: int = 4000
    num_val: int = 400
    num_test: int = 800
    seed: int = 0
    label_noise: float = 0.05
    max_objects: int = 2
    jpeg_quality: int = 95

    def __post_init__(self) -> None:
        _check_size(self.image_size)
        if min(self.num_train, self.num_val, self.num_test, self.seed) < 0:
            raise ValueError("split sizes and the seed must be >= 0")
        if not 0.0 <= self.label_noise <= 1.0:
            raise ValueError(f"label_noise must be in [0, 1], got {self.label_noise}")
        if not 1 <= self.max_objects <= MAX_OBJECTS_LIMIT:
            raise ValueError(f"max_objects must be in 1..{MAX_OBJECTS_LIMIT}, got {self.max_objects}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100, got {self.jpeg_quality}")


@dataclass
class _Item:
    """One image to draw: its composition, labels, file stem and its own random seed."""

    split: str
    scene: str
    objects: list[str]
    true_emotion: str
    emotion: str
    seed: tuple[int, ...]
    stem: str = ""


def _plan(config: EmoShapesConfig) -> list[_Item]:
    """Every image's composition and label, split by split, before any drawing.

    Each split draws from its own stream, so the val and test sets do not change with ``num_train``.
    True emotions are exactly balanced (round-robin, then shuffled).
    """
    items: list[_Item] = []
    for split_id, split in enumerate(SPLITS):
        n = getattr(config, f"num_{split}")
        rng = np.random.default_rng([config.seed, split_id, 0])
        labels = rng.permutation(np.arange(n) % len(EMOTIONS))
        for i, label in enumerate(labels):
            true_emotion = EMOTIONS[int(label)]
            scene, objects = sample_composition(rng, true_emotion, config.max_objects)
            emotion = true_emotion
            if rng.random() < config.label_noise:
                others = [e for e in EMOTIONS if e != true_emotion]
                emotion = others[int(rng.integers(len(others)))]
            items.append(_Item(split, scene, objects, true_emotion, emotion, (config.seed, split_id, 1, i)))
    counters = dict.fromkeys(EMOTIONS, 0)
    for item in items:  # EmoSet numbers files within each emotion folder, across all splits
        item.stem = f"{item.emotion}_{counters[item.emotion]:05d}"
        counters[item.emotion] += 1
    return items


def _draw_item(item: _Item, image_size: int, quality: int, root: Path) -> None:
    """Render, encode and write one image and its annotation."""
    image = render(item.scene, item.objects, np.random.default_rng(list(item.seed)), image_size)
    image.save(os.path.join(root, "image", item.emotion, item.stem + ".jpg"), format="JPEG",
               quality=quality, subsampling=0)  # 4:4:4: chroma subsampling smears colour at 64 px
    annotation = {
        "scene": item.scene,
        "object": item.objects,
        "caption": caption_of(item.scene, item.objects),
        "emotion": item.emotion,
        "true_emotion": item.true_emotion,
    }
    _write_json(os.path.join(root, "annotation", item.emotion, item.stem + ".json"), annotation)


def _write_json(path: str | os.PathLike, data: object, indent: int | None = None) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=indent)
        f.write("\n")


def _label_map(labels: Sequence[str]) -> dict[str, dict]:
    """EmoSet's ``info.json`` entry: ``label2idx`` and ``idx2label`` (keys are strings of ints)."""
    return {
        "label2idx": {x: i for i, x in enumerate(labels)},
        "idx2label": {str(i): x for i, x in enumerate(labels)},
    }


def generate_emoshapes(
    out_dir: str | os.PathLike,
    config: EmoShapesConfig | None = None,
    progress: bool = True,
) -> Path:
    """Write an EmoShapes dataset in EmoSet's layout.

    Args:
        out_dir: the dataset folder (created; existing files of the same names are overwritten).
        config: what to generate; ``EmoShapesConfig()`` when ``None``.
        progress: show a tqdm progress bar.

    Returns:
        The dataset folder, readable by ``EmoSetDataset`` / ``build_dataset("emoshapes", ...)``.
    """
    config = config or EmoShapesConfig()
    root = Path(out_dir)
    items = _plan(config)
    for emotion in EMOTIONS:
        (root / "image" / emotion).mkdir(parents=True, exist_ok=True)
        (root / "annotation" / emotion).mkdir(parents=True, exist_ok=True)
    from tqdm.auto import tqdm  # imported here so that importing uniemo.data stays cheap

    # One process: about 2-3 ms an image, so worker processes (each importing torch through uniemo.data)
    # cost more than they save at these sizes.
    for item in tqdm(items, desc="EmoShapes", unit="img", disable=not progress):
        _draw_item(item, config.image_size, config.jpeg_quality, root)
    for split in SPLITS:
        rows = [[it.emotion, f"image/{it.emotion}/{it.stem}.jpg", f"annotation/{it.emotion}/{it.stem}.json"]
                for it in items if it.split == split]
        _write_json(root / f"{split}.json", rows)
    _write_json(root / "info.json",
                {"emotion": _label_map(EMOTIONS), "scene": _label_map(SCENES), "object": _label_map(OBJECTS)},
                indent=2)
    _write_json(root / "emoshapes.json", {
        "config": asdict(config),
        "scene_groups": SCENE_GROUPS,
        "object_groups": OBJECT_GROUPS,
        "emotion_table": EMOTION_TABLE,
        "rule": "emotion = emotion_table[scene group of scene][object group of objects[0]]; with probability "
                "label_noise the label becomes a uniformly drawn other emotion (true_emotion keeps the rule's)",
    }, indent=2)
    return root


def preview_grid(config: EmoShapesConfig | None = None, per_row: int = 8, scale: int = 2) -> Image.Image:
    """A grid of fresh samples, one row per emotion (in ``EMOTIONS`` order), for looking at the world."""
    config = config or EmoShapesConfig()
    rng = np.random.default_rng([config.seed, 99])
    side = config.image_size * scale
    grid = Image.new("RGB", (per_row * (side + 2), len(EMOTIONS) * (side + 2)), (255, 255, 255))
    for row, emotion in enumerate(EMOTIONS):
        for col in range(per_row):
            scene, objects = sample_composition(rng, emotion, config.max_objects)
            tile = render(scene, objects, rng, config.image_size).resize((side, side), Image.Resampling.NEAREST)
            grid.paste(tile, (col * (side + 2), row * (side + 2)))
    return grid


def main(argv: Sequence[str] | None = None) -> Path:
    """CLI: ``python -m uniemo.data.emoshapes --out DIR [--num-train N] [--seed S] [--image-size 64]``."""
    defaults = EmoShapesConfig()
    parser = argparse.ArgumentParser(description="Generate the EmoShapes dataset in EmoSet's layout.")
    parser.add_argument("--out", required=True, help="output dataset folder")
    parser.add_argument("--num-train", type=int, default=defaults.num_train)
    parser.add_argument("--num-val", type=int, default=defaults.num_val)
    parser.add_argument("--num-test", type=int, default=defaults.num_test)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--image-size", type=int, default=defaults.image_size)
    parser.add_argument("--label-noise", type=float, default=defaults.label_noise)
    parser.add_argument("--max-objects", type=int, default=defaults.max_objects)
    parser.add_argument("--preview", default=None, help="also save a preview grid PNG here")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    config = EmoShapesConfig(
        image_size=args.image_size, num_train=args.num_train, num_val=args.num_val, num_test=args.num_test,
        seed=args.seed, label_noise=args.label_noise, max_objects=args.max_objects,
    )
    start = time.perf_counter()
    root = generate_emoshapes(args.out, config, progress=not args.no_progress)
    total = config.num_train + config.num_val + config.num_test
    print(f"wrote {total} images to {root} in {time.perf_counter() - start:.1f} s")
    if args.preview:
        preview_grid(config).save(args.preview)
        print(f"preview grid: {args.preview}")
    return root


if __name__ == "__main__":
    main()
