"""One preprocessing per backbone, shared by training, evaluation and the demo (docs/method.md section 2).

Evaluation: shortest-side resize + center crop. Training: RandomResizedCrop(scale 0.5-1) + flip.
Both normalise with the backbone's own mean/std (CLIP's for CLIP backbones), read from the model
config, so evaluation and the UI cannot drift from training.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T

from uniemo.constants import CLIP_MEAN, CLIP_STD


def build_transform(
    image_size: int,
    train: bool,
    mean: Sequence[float] = CLIP_MEAN,
    std: Sequence[float] = CLIP_STD,
) -> T.Compose:
    """PIL RGB image -> (3, image_size, image_size) float tensor, normalised."""
    if train:
        geometry = [
            T.RandomResizedCrop(image_size, scale=(0.5, 1.0), interpolation=T.InterpolationMode.BICUBIC),
            T.RandomHorizontalFlip(),
        ]
    else:
        geometry = [
            T.Resize(image_size, interpolation=T.InterpolationMode.BICUBIC),
            T.CenterCrop(image_size),
        ]
    return T.Compose([*geometry, T.ToTensor(), T.Normalize(mean=list(mean), std=list(std))])


def denormalize(pixel_values: torch.Tensor, mean=CLIP_MEAN, std=CLIP_STD) -> torch.Tensor:
    """Undo ``Normalize``: (..., 3, H, W) normalised -> values in [0, 1]."""
    m = torch.tensor(mean, dtype=pixel_values.dtype, device=pixel_values.device).view(3, 1, 1)
    s = torch.tensor(std, dtype=pixel_values.dtype, device=pixel_values.device).view(3, 1, 1)
    return (pixel_values * s + m).clamp(0, 1)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode (RGBA, P, L, I;16, CMYK, ...) -> RGB; first frame of animations."""
    if getattr(image, "is_animated", False):
        image.seek(0)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit greyscale: scale to 8 bits before converting (PIL's convert would clip).
        arr = np.asarray(image, dtype=np.float64)
        hi = arr.max() if arr.size and arr.max() > 0 else 1.0
        image = Image.fromarray((arr / hi * 255.0).round().astype("uint8"), mode="L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    return image.convert("RGB")
