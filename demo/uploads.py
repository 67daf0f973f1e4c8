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
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from uniemo.data.base import upright
from uniemo.pipeline import load_input_image

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

    Handles any PIL mode (RGBA, palette, greyscale, CMYK, 16-bit) and animations (first frame), and applies the
    EXIF orientation (``upright``). Images above ``MAX_INPUT_PIXELS`` are refused before decoding (decompression
    bombs); accepted images larger than ``MAX_WORKING_SIDE`` are downscaled.

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
        name = path.name if len(path.name) <= 60 else path.name[:57] + "..."
        if not path.is_file():
            raise ValueError(f"the image file {name!r} does not exist")
        nbytes = path.stat().st_size
        if nbytes == 0:
            raise ValueError(f"{name!r} is an empty file, not an image")
        if nbytes > max_bytes:
            raise ValueError(f"{name!r} is {nbytes / 2**20:.1f} MB; images up to "
                             f"{max_bytes // 2**20} MB are accepted")
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
