"""EmoShapes' painters: a scene painter per scene and an object painter per object.

A scene painter draws a distinctive background (palette, horizon, texture) so that a scene is recognisable
at 16 px; an object painter draws a distinctive silhouette and colour into a transparent square box.
Coordinates are fractions of the canvas (scenes) or of the object box (objects). Every painter draws all
its randomness from the generator it is given, so the same generator state gives the same pixels.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw

# ----------------------------------------------------------------------------------------------------
# Drawing helpers
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
