"""Opening an image: the one way a file, a PIL image or an array becomes the RGB picture the model sees.

Training data (``uniemo.data.base.load_image``), inference (``UniEmoPipeline``), the scorers, the tiny world's
pretraining and the demo all go through ``open_image``, so a photo reads the same everywhere:

- decoded fully before it is returned: PIL decodes lazily, and a truncated file that opened fine would
  otherwise fail later, inside a transform or the model, far from its path;
- the EXIF orientation applied (``upright``): phones store photos sideways and tag them with a rotation;
- any mode (RGBA, palette with transparency, greyscale, 16-bit, CMYK) and animations (first frame) made RGB by
  ``uniemo.data.transforms.to_rgb``;
- optional limits for untrusted input (the demo): the file size, the pixel count (read from the header, before
  any pixel is decoded, so a decompression bomb costs nothing) and the shorter side.

Every failure is one ``UnreadableImageError`` (both an ``OSError`` and a ``ValueError``) whose message names the
file; its ``reason`` says which check failed, so a caller can word its own message (the demo does).
PIL's own limit, ``Image.MAX_IMAGE_PIXELS`` (warn above it, refuse above twice it), applies as well.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from uniemo.data.transforms import to_rgb

ImageSource = str | os.PathLike | Image.Image | np.ndarray

# UnreadableImageError.reason: which check refused the image.
REASONS: tuple[str, ...] = ("unsupported", "missing", "empty", "too_many_bytes", "not_an_image", "too_many_pixels",
                            "too_small", "corrupt")


class UnreadableImageError(OSError, ValueError):
    """An image that cannot be used: a missing, empty, oversized, corrupt or truncated file, a non-image, an image
    outside the caller's limits, or an input of the wrong type. The message names the file.

    Attributes:
        reason: one of ``REASONS``.
        size: (width, height) when known (``too_many_pixels`` from the header, ``too_small``), else ``None``.
        nbytes: the file's size in bytes when it was read, else ``None``.
    """

    def __init__(self, message: str, reason: str = "corrupt", size: tuple[int, int] | None = None,
                 nbytes: int | None = None):
        super().__init__(message)
        self.reason = reason
        self.size = size
        self.nbytes = nbytes


def upright(image: Image.Image) -> Image.Image:
    """The image the way a person sees it: its EXIF orientation applied. An image without the tag, or with
    unreadable EXIF, comes back as it is (the same object)."""
    try:
        if image.getexif().get(ExifTags.Base.Orientation, 1) in (None, 1):
            return image
        return ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError, TypeError, KeyError):
        return image


def open_image(source: ImageSource, *, max_bytes: int | None = None, max_pixels: int | None = None,
               min_side: int | None = None) -> Image.Image:
    """An upright, fully decoded RGB PIL image, or ``UnreadableImageError`` saying why not.

    Args:
        source: a file path, a PIL image (any mode; decoded in place, not closed) or a uint8 array (H, W) or
            (H, W, 3|4).
        max_bytes: refuse files larger than this many bytes (paths only).
        max_pixels: refuse images of more pixels than this, judged from the file's header before decoding.
        min_side: refuse images whose shorter side is below this many pixels.

    Returns:
        A new RGB image (never ``source`` itself).

    Raises:
        UnreadableImageError: a ``ValueError`` and an ``OSError``; ``reason`` is one of ``REASONS``.
    """
    if isinstance(source, (str, os.PathLike)):
        return _open_file(Path(source), max_bytes, max_pixels, min_side)
    if isinstance(source, np.ndarray):
        source = _from_array(source)
    if not isinstance(source, Image.Image):
        raise UnreadableImageError(f"expected an image file path, a PIL image or a uint8 array, got "
                                   f"{type(source).__name__}", "unsupported")
    _check_size(source.size, "the image", max_pixels, min_side)
    return _decoded(source, "the image")


def _open_file(path: Path, max_bytes: int | None, max_pixels: int | None, min_side: int | None) -> Image.Image:
    try:
        status = path.stat()
    except OSError as error:  # no such file, a dangling or looping link, a NUL byte in the name
        raise UnreadableImageError(f"the image file {path} does not exist", "missing") from error
    if not stat.S_ISREG(status.st_mode):
        raise UnreadableImageError(f"{path} is not a file", "missing")
    nbytes = status.st_size
    if max_bytes is not None and nbytes > max_bytes:
        raise UnreadableImageError(f"{path} is {nbytes} bytes; at most {max_bytes} are accepted",
                                   "too_many_bytes", nbytes=nbytes)
    try:
        opened = Image.open(path)  # reads the header only
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise UnreadableImageError(f"{path} has too many pixels to open safely ({error})", "too_many_pixels",
                                   nbytes=nbytes) from error
    except UnidentifiedImageError as error:
        reason, what = ("empty", "is an empty file") if nbytes == 0 else ("not_an_image", "is not an image file")
        raise UnreadableImageError(f"{path} {what} ({error})", reason, nbytes=nbytes) from error
    except (OSError, SyntaxError, ValueError) as error:
        raise UnreadableImageError(f"cannot read image {path}: {error}", nbytes=nbytes) from error
    with opened:
        _check_size(opened.size, str(path), max_pixels, min_side)
        return _decoded(opened, str(path))


def _from_array(array: np.ndarray) -> Image.Image:
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise UnreadableImageError(f"an image array must be uint8 (H, W), (H, W, 3) or (H, W, 4), got "
                                   f"{array.dtype} {array.shape}", "unsupported")
    return Image.fromarray(array)


def _check_size(size: tuple[int, int], name: str, max_pixels: int | None, min_side: int | None) -> None:
    width, height = size
    if max_pixels is not None and width * height > max_pixels:
        raise UnreadableImageError(f"{name} is {width}x{height} pixels; at most {max_pixels} pixels are accepted",
                                   "too_many_pixels", size=(width, height))
    if min_side is not None and min(width, height) < min_side:
        raise UnreadableImageError(f"{name} is {width}x{height} pixels; both sides must be at least {min_side}",
                                   "too_small", size=(width, height))


def _decoded(image: Image.Image, name: str) -> Image.Image:
    """Decode every pixel now, then upright and RGB (``to_rgb`` returns a copy, which outlives a closed file)."""
    try:
        image.load()
        return to_rgb(upright(image))
    # truncated data ("image file is truncated"), bad chunks, a frame that claims too many pixels
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as error:
        raise UnreadableImageError(f"cannot decode image {name}; it may be truncated or corrupt ({error})"
                                   ) from error
