"""Pictures of what the model looks at, shared by the demo and the paper-style figures.

Paper: Fig. 9 (the scene and object expert queries' attention over the image). ``attention_overlay`` turns a
patch-grid attention map (``EmotionPrediction.scene_attention`` / ``object_attention``, shape (g, g)) into a
coloured heat map over the image the model saw: the grid is normalised per image, bilinearly upsampled to
the image size, coloured with a matplotlib colormap and alpha-blended over the image.

Only ``matplotlib.colormaps`` is used (no pyplot, no figure), so this runs under any backend and never
leaks figures in a server. The functions return PIL images.
"""

from __future__ import annotations

import matplotlib
import numpy as np
from PIL import Image


def _as_size(size: int | tuple[int, int] | None, image: Image.Image) -> tuple[int, int]:
    if size is None:
        return image.size
    width, height = (size, size) if isinstance(size, int) else size
    if isinstance(width, bool) or isinstance(height, bool) or int(width) < 1 or int(height) < 1:
        raise ValueError(f"size must be a positive int or a (width, height) pair, got {size!r}")
    return int(width), int(height)


def upsample_attention(attention: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Min-max normalise a patch-grid map and upsample it bilinearly to ``size``.

    Args:
        attention: (g_h, g_w) finite float array, e.g. the (7, 7) grid of ViT-B/32 at 224 px.
        size: (width, height) of the output, PIL order.

    Returns:
        (height, width) float32 array in [0, 1]. A constant map becomes all zeros (nothing stands out).
    """
    grid = np.asarray(attention, dtype=np.float32)
    if grid.ndim != 2 or grid.size == 0:
        raise ValueError(f"attention must be a non-empty 2-D (g, g) array, got shape {grid.shape}")
    if not np.isfinite(grid).all():
        raise ValueError("attention contains NaN or infinite values")
    low, high = float(grid.min()), float(grid.max())
    grid = (grid - low) / (high - low) if high > low else np.zeros_like(grid)
    # PIL's bilinear filter on a float ("F") image samples at pixel centres, so each patch's value sits at
    # the centre of its cell rather than at a corner: the map lines up with the patches it came from.
    up = Image.fromarray(grid).resize(size, Image.Resampling.BILINEAR)
    return np.clip(np.asarray(up, dtype=np.float32), 0.0, 1.0)


def attention_overlay(image: Image.Image, attention: np.ndarray, cmap: str = "jet", alpha: float = 0.5,
                      size: int | tuple[int, int] | None = None) -> Image.Image:
    """Blend a coloured attention heat map over an image.

    Args:
        image: the image the attention refers to (any PIL mode), usually ``EmotionPrediction.view``.
        attention: (g, g) attention over the patch grid; any finite scale (normalised per image here).
        cmap: a matplotlib colormap name (``"jet"``, ``"viridis"``, ``"inferno"``, ...).
        alpha: weight of the heat map in the blend, in [0, 1] (0 gives the image, 1 the bare heat map).
        size: output size, an int for a square or (width, height); ``None`` keeps the image's size. The
            image is resized with bicubic filtering, the heat map bilinearly.

    Returns:
        An RGB image of the requested size.

    Raises:
        ValueError: for an unknown colormap, ``alpha`` outside [0, 1], or a malformed attention map.
    """
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    if cmap not in matplotlib.colormaps:
        raise ValueError(f"unknown colormap {cmap!r}; try 'jet', 'viridis', 'inferno' or 'magma'")
    width, height = _as_size(size, image)
    base = image.convert("RGB")
    if base.size != (width, height):
        base = base.resize((width, height), Image.Resampling.BICUBIC)
    heat = upsample_attention(attention, (width, height))
    colours = matplotlib.colormaps[cmap](heat)[..., :3]  # (H, W, 3) floats in [0, 1]; alpha channel dropped
    blended = (1.0 - alpha) * (np.asarray(base, dtype=np.float32) / 255.0) + alpha * colours
    return Image.fromarray(np.clip(blended * 255.0 + 0.5, 0, 255).astype(np.uint8))
