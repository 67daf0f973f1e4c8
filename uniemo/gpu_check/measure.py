"""Readings of the GPU check: synchronised timing and peak memory on a CUDA device (and their CPU stand-ins for
the smoke run), the machine and library versions, and how numbers are put in the JSON and the log."""

from __future__ import annotations

import gc
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import diffusers
import torch
import transformers


class Device:
    """Synchronisation and peak-memory readings for CUDA, and their CPU stand-ins for the smoke run."""

    def __init__(self, name: str):
        self.device = torch.device(name)
        self.cuda = self.device.type == "cuda"

    def synchronize(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def clear(self) -> None:
        """Free what the last configuration left (the allocator's cache too) and restart the peak counter."""
        gc.collect()
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()
        self.reset_peak()

    def reset_peak(self) -> None:
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        try:  # "5" resets the peak resident set size (VmHWM) of this process
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass

    def allocated(self) -> int | None:
        if self.cuda:
            return int(torch.cuda.memory_allocated(self.device))
        return proc_status_bytes("VmRSS")

    def peak(self) -> int | None:
        if self.cuda:
            return int(torch.cuda.max_memory_allocated(self.device))
        return proc_status_bytes("VmHWM")

    @property
    def memory_kind(self) -> str:
        return ("torch.cuda.max_memory_allocated (tensor bytes)" if self.cuda
                else "process peak resident set, VmHWM (CPU smoke run: not comparable to GPU figures)")

    def timed(self, fn: Callable[[], Any]) -> tuple[float, Any]:
        self.synchronize()
        start = time.perf_counter()
        result = fn()
        self.synchronize()
        return time.perf_counter() - start, result


def proc_status_bytes(field: str) -> int | None:
    """A size field of /proc/self/status (``VmRSS``, ``VmHWM``) in bytes; ``None`` where there is none."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b rounded to 4 places; ``None`` when either is missing or b is 0."""
    return None if a is None or b is None or b == 0 else round(a / b, 4)


def gib(nbytes: int | None) -> str:
    return "n/a" if nbytes is None else f"{nbytes / 2**30:.2f} GiB"


def log(message: str) -> None:
    """Progress goes to stderr: stdout stays free for the caller."""
    print(message, file=sys.stderr, flush=True)


def environment(device: Device) -> dict[str, Any]:
    """Python, platform, library versions and the device (its name, memory and capability on CUDA)."""
    env = {"python": platform.python_version(), "platform": platform.platform(), "torch": torch.__version__,
           "diffusers": diffusers.__version__, "transformers": transformers.__version__,
           "cuda": torch.version.cuda, "device": str(device.device)}
    if device.cuda:
        props = torch.cuda.get_device_properties(device.device)
        env.update(device_name=props.name, device_memory_bytes=int(props.total_memory),
                   capability=f"{props.major}.{props.minor}", cudnn=torch.backends.cudnn.version())
    else:
        env.update(device_name=platform.processor() or platform.machine(), cpu_count=os.cpu_count(),
                   torch_threads=torch.get_num_threads())
    return env
