"""The demo's request limits: what one request may ask for on this machine, and how large outputs are shown.

On a CPU with a full-size diffusion model (resolution >= ``FULL_SIZE_RESOLUTION``) steps, resolution and
image count are capped (``demo_limits``); a small model such as UniEmo-Tiny, or any model on a GPU, runs
uncapped. Every generation handler (``demo.handlers``) enforces these limits itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from uniemo.pipeline import MAX_STEPS

# What a request gets and may ask for.
DISPLAY_SIDE = 256  # smaller generated images and overlays are enlarged to at least this for display
MAX_OVERLAY_SIDE = 512  # larger views are shown at this size: enough to read a 7x7 or 16x16 patch grid
DEMO_MAX_IMAGES = 8  # one gallery's worth; the pipeline itself allows more
MAX_SEED = 2**31 - 1
SWEEP_WEIGHTS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
# On a CPU a full-size model (512 px SD) takes minutes per image; these keep one request near a minute.
FULL_SIZE_RESOLUTION = 256
CPU_MAX_STEPS = 20
CPU_MAX_SIZE = 256
CPU_MAX_IMAGES = 2


@dataclass(frozen=True)
class DemoLimits:
    """What one request may ask for on this machine.

    Attributes:
        max_images: the largest number of images per request.
        max_steps: the largest number of denoising steps.
        size: the side, in pixels, at which images are generated.
        capped: True when the model's own resolution or step range was reduced (CPU + full-size model).
        notice: a sentence for the page saying what was capped, or "".
    """

    max_images: int
    max_steps: int
    size: int
    capped: bool
    notice: str


def demo_limits(pipe) -> DemoLimits:
    """The request limits for ``pipe`` on its device.

    On a CPU with a full-size diffusion model (resolution >= 256) steps, resolution and image count are
    capped; a small model such as UniEmo-Tiny (32-64 px), or any model on a GPU, runs uncapped.

    Args:
        pipe: a loaded ``UniEmoPipeline`` (only ``device`` and ``resolution`` are read).

    Returns:
        The ``DemoLimits`` that every generation handler enforces.
    """
    on_cpu = getattr(getattr(pipe, "device", None), "type", "cpu") == "cpu"
    resolution = int(pipe.resolution)
    if on_cpu and resolution >= FULL_SIZE_RESOLUTION:
        size = min(resolution, CPU_MAX_SIZE)
        notice = (f"Running on a CPU: generation is capped at {CPU_MAX_STEPS} steps, {size}x{size} px "
                  f"(the model's native size is {resolution} px) and {CPU_MAX_IMAGES} images per request. "
                  "Run on a GPU for full settings.")
        return DemoLimits(CPU_MAX_IMAGES, CPU_MAX_STEPS, size, True, notice)
    return DemoLimits(DEMO_MAX_IMAGES, MAX_STEPS, resolution, False, "")
