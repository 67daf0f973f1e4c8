"""uniemo.data.images.open_image: the one image opener of the data loaders, the pipeline, the scorers and the demo.

Every input kind (path, PIL image, uint8 array) and mode comes back as a fully decoded, upright RGB image; every
failure is one ``UnreadableImageError`` (a ``ValueError`` and an ``OSError``) with a ``reason``."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from uniemo.data.base import UnreadableImageError as DataError
from uniemo.data.base import load_image
from uniemo.data.images import REASONS, UnreadableImageError, open_image, upright


def noise(size=(48, 40), seed=0) -> Image.Image:
    width, height = size
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width x height pixels and carries almost no data: a decompression bomb."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0"))
                     + chunk(b"IEND", b""))
    return path


def refused(reason: str, source, **limits) -> UnreadableImageError:
    with pytest.raises(UnreadableImageError) as info:
        open_image(source, **limits)
    assert info.value.reason == reason and reason in REASONS
    assert isinstance(info.value, ValueError) and isinstance(info.value, OSError)
    return info.value


def test_one_error_type_for_the_loaders_and_the_pipeline():
    assert DataError is UnreadableImageError


def test_truncated_file_fails_here_naming_its_path(tmp_path):
    path = tmp_path / "cut.jpg"
    noise((64, 64)).save(path, quality=95)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    error = refused("corrupt", path)
    assert str(path) in str(error) and "truncated" in str(error)
    with pytest.raises(UnreadableImageError, match="cut.jpg"):
        load_image(path)


@pytest.mark.parametrize("mode", ["L", "P-transparent", "RGBA", "I;16", "CMYK"])
def test_odd_modes_become_rgb(tmp_path, mode):
    image = noise()
    if mode == "P-transparent":
        image = image.convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
        image.info["transparency"] = 0
        path = tmp_path / "image.png"
    elif mode == "I;16":
        pixels = np.random.default_rng(1).integers(0, 65535, (40, 48), dtype=np.uint16)
        image = Image.fromarray(pixels)  # I;16
        path = tmp_path / "image.png"
    else:
        image = image.convert(mode)
        path = tmp_path / ("image.jpg" if mode == "CMYK" else "image.png")
    if mode == "RGBA":
        image.putalpha(Image.new("L", image.size, 0))  # fully transparent: white, as on a page
    image.save(path)
    assert Image.open(path).mode != "RGB"
    for source in (path, Image.open(path)):
        rgb = open_image(source)
        assert rgb.mode == "RGB" and rgb.size == (48, 40)
    if mode == "RGBA":
        assert np.asarray(rgb).min() == 255
    if mode == "P-transparent":
        index_zero = np.asarray(Image.open(path)) == 0
        assert index_zero.any() and (np.asarray(rgb)[index_zero] == 255).all()


def test_exif_rotated_png_equals_the_upright_image(tmp_path):
    seen = noise((64, 48))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display", as a phone writes a portrait photo
    path = tmp_path / "phone.png"
    seen.transpose(Image.Transpose.ROTATE_90).save(path, exif=exif)
    assert Image.open(path).size == (48, 64)
    assert np.array_equal(np.asarray(open_image(path)), np.asarray(seen))
    assert np.array_equal(np.asarray(open_image(Image.open(path))), np.asarray(seen))
    plain = noise()
    assert upright(plain) is plain


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_bomb_is_refused_from_its_header_before_decoding(tmp_path, monkeypatch):
    def no_decoding(self):
        raise AssertionError("decoded a refused image")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    error = refused("too_many_pixels", png_header_only(tmp_path / "bomb.png", 7000, 7000), max_pixels=40_000_000)
    assert error.size == (7000, 7000)
    # beyond twice PIL's own limit PIL refuses in Image.open, before any size is known here
    beyond = png_header_only(tmp_path / "huge.png", 30000, 30000)
    assert refused("too_many_pixels", beyond).size is None


def test_limits_and_bad_files(tmp_path):
    path = tmp_path / "small.png"
    noise((20, 12)).save(path)
    assert refused("too_small", path, min_side=16).size == (20, 12)
    assert refused("too_small", Image.new("RGB", (1, 1)), min_side=16).size == (1, 1)
    assert refused("too_many_bytes", path, max_bytes=10).nbytes == path.stat().st_size
    assert open_image(path, max_bytes=path.stat().st_size, max_pixels=240, min_side=12).size == (20, 12)
    refused("missing", tmp_path / "gone.png")
    refused("missing", tmp_path)
    (tmp_path / "empty.png").write_bytes(b"")
    refused("empty", tmp_path / "empty.png")
    (tmp_path / "notes.png").write_text("text with an image's name")
    assert "notes.png" in str(refused("not_an_image", tmp_path / "notes.png"))
    refused("unsupported", 42)


def test_arrays_and_pil_images(tmp_path):
    pixels = np.asarray(noise())
    assert np.array_equal(np.asarray(open_image(pixels)), pixels)
    grey = open_image(pixels[..., 0])
    assert grey.mode == "RGB" and np.array_equal(np.asarray(grey)[..., 2], pixels[..., 0])
    assert open_image(np.dstack([pixels, np.full(pixels.shape[:2], 255, np.uint8)])).mode == "RGB"
    for bad in (pixels.astype(np.float32), pixels[..., :2], pixels[None]):
        with pytest.raises(ValueError, match="uint8"):
            open_image(bad)
    image = noise()
    copy = open_image(image)
    assert copy is not image and copy.tobytes() == image.tobytes()
    path = tmp_path / "anim.gif"
    Image.new("RGB", (32, 32), (255, 0, 0)).save(path, save_all=True, append_images=[Image.new("RGB", (32, 32))])
    assert np.asarray(open_image(path))[..., 0].mean() > 200  # the first frame
