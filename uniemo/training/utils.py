"""Small pieces of training plumbing shared by stage 1, the probe and stage 2."""

from __future__ import annotations

import math

import torch

MIXED_PRECISION = ("no", "fp16", "bf16")
WEIGHT_DTYPES = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def mixed_precision_setting(configured: str | None) -> str | None:
    """What to hand ``Accelerator(mixed_precision=...)``: the config's value when it sets one, else ``None``,
    which lets accelerate take the launcher's (``accelerate launch --mixed_precision X`` exports
    ``ACCELERATE_MIXED_PRECISION``; with neither, "no")."""
    if configured is not None and configured not in MIXED_PRECISION:
        raise ValueError(f"mixed_precision must be one of {', '.join(MIXED_PRECISION)} (or null: the launcher's), "
                         f"got {configured!r}")
    return configured


def freeze_gradless(modules: dict, loss_fn) -> list[str]:
    """Freeze the trainable parameters that one evaluation of ``loss_fn()`` leaves without a gradient.

    Used before DDP wraps the model (several processes only): DDP runs here with ``find_unused_parameters``
    off, because the expert projections are applied outside the wrapped ``forward``, which its search for
    unused parameters does not allow; so every trainable parameter must get a gradient at every step. A loss
    weighted 0 can leave whole branches without one (L_S alone never reaches the object queries or the
    head). Such parameters would never change anyway, so freezing them changes nothing. The probe restores
    the CPU random state and discards its gradients.

    Args:
        modules: name -> module whose parameters are checked.
        loss_fn: zero-argument callable returning the training loss of one batch.
    Returns:
        the frozen parameters, as "module.parameter" names.
    """
    with torch.random.fork_rng(devices=[]):
        loss_fn().backward()
    frozen = []
    for prefix, module in modules.items():
        for name, p in module.named_parameters():
            if p.requires_grad and p.grad is None:
                p.requires_grad_(False)
                frozen.append(f"{prefix}.{name}")
        module.zero_grad(set_to_none=True)
    return frozen


def cosine_with_warmup(optimizer, warmup_steps: int, total_steps: int, min_ratio: float = 0.0):
    """Linear warmup then a single cosine decay over the whole run (not the official 64-step cycle)."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

