"""Upload safety and image opening: which files a request may name, and how an image is opened safely.

Files named by a request: the page's events skip gradio's preprocessing, so an API caller can name any path
on the server. ``read_image(..., folders=...)`` opens a path only when its real location (symlinks and ``..``
resolved) lies in one of ``folders`` (the page passes gradio's upload folder and the bundled examples); any
other path gets ``NOT_UPLOADED``, one message that says nothing about the file.

Importing this module lowers PIL's own decompression-bomb limit to ``MAX_INPUT_PIXELS`` for the whole server
process (gradio's own image opening included).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from uniemo.data.images import UnreadableImageError, open_image

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


def read_image(image: Any, folders: Sequence[str | os.PathLike] | None = None,
               max_bytes: int = MAX_INPUT_BYTES) -> Image.Image:
    """Open an uploaded image as RGB, upright, or say clearly why it cannot be used.

    The library's ``open_image`` does the opening with this page's limits: any PIL mode (RGBA, palette,
    greyscale, CMYK, 16-bit) and animations (first frame), the EXIF orientation applied, images above
    ``MAX_INPUT_PIXELS`` refused from their header before decoding (decompression bombs), truncated files refused.
    Accepted images larger than ``MAX_WORKING_SIDE`` are downscaled.

    Args:
        image: a file path (what the page and the API deliver) or a PIL image.
        folders: when given, a path is opened only if it lies in one of these folders (``check_uploaded``);
            ``None`` opens any path (scripts and tests; the page always passes its folders).
        max_bytes: the largest file accepted, in bytes (default ``MAX_INPUT_BYTES``).

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
        name = repr(path.name if len(path.name) <= 60 else path.name[:57] + "...")
        image = path
    elif isinstance(image, Image.Image):
        name = "the image"
    else:
        raise ValueError(f"expected an image file path or a PIL image, got {type(image).__name__}")
    try:
        rgb = open_image(image, max_bytes=max_bytes, max_pixels=MAX_INPUT_PIXELS, min_side=MIN_INPUT_SIDE)
    except UnreadableImageError as e:
        raise ValueError(_message(e, name, max_bytes)) from e
    if max(rgb.size) > MAX_WORKING_SIDE:
        rgb.thumbnail((MAX_WORKING_SIDE, MAX_WORKING_SIDE), Image.Resampling.LANCZOS)
    return rgb


def _message(error: UnreadableImageError, name: str, max_bytes: int) -> str:
    """What the page says about an image ``open_image`` refused; ``name`` is the short file name, never a path."""
    mp = f"at most {MAX_INPUT_PIXELS / 1e6:.0f} megapixels are accepted"
    if error.size is not None:
        width, height = error.size
        if error.reason == "too_many_pixels":
            return f"the image is {width}x{height} pixels ({width * height / 1e6:.0f} MP); {mp}"
        return f"the image is {width}x{height} pixels; both sides must be at least {MIN_INPUT_SIDE} pixels"
    detail = f" ({error.__cause__})" if error.__cause__ is not None else ""  # PIL's words, which name no path
    messages = {
        "missing": f"the image file {name} does not exist",
        "empty": f"{name} is an empty file, not an image",
        "too_many_bytes": f"{name} is {(error.nbytes or 0) / 2**20:.1f} MB; images up to {max_bytes // 2**20} MB "
                          "are accepted",
        "too_many_pixels": f"{name} is too large to open safely; {mp}",
        "not_an_image": f"{name} is not an image file this demo can read (use PNG, JPEG, WebP, GIF, BMP or TIFF)",
    }
    return messages.get(error.reason, f"{name} could not be decoded; the file may be truncated or corrupt{detail}")
