"""Work split across processes with accelerate, with results that do not depend on the number of processes.

``map_chunks`` hands whole chunks (fixed batches: what one model call sees) to the processes with accelerate's own
``split_between_processes`` and gathers the results back in chunk order on every process. A chunk is computed the
same way whoever computes it, so 1, 2 or 8 processes return the same list, element for element.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch
from accelerate import PartialState
from accelerate.utils import gather_object
from tqdm.auto import tqdm

T = TypeVar("T")


def cpu_processes() -> bool:
    """True when this is one of several processes (``torchrun``, ``accelerate launch``) on a machine without CUDA.

    accelerate forms a gloo process group on the CPU only when told ``cpu=True`` (``accelerate launch --cpu``
    says so through ``ACCELERATE_USE_CPU``; ``torchrun`` does not). Without it every process would train the
    whole run alone and all of them would write the same run folder.
    """
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()


def process_state() -> PartialState:
    """This process's place among those of ``accelerate launch`` / ``torchrun`` (a gloo group on the CPU when there
    is no GPU), or the only process."""
    return PartialState(cpu=cpu_processes())


def chunked(items: Sequence[T], size: int) -> list[list[T]]:
    """``items`` cut into consecutive lists of at most ``size``."""
    if size < 1:
        raise ValueError(f"chunk size must be >= 1, got {size}")
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


def map_chunks(chunks: Sequence[Any], fn: Callable[[Any], Any], desc: str | None = None,
               state: PartialState | None = None) -> list[Any]:
    """``[fn(c) for c in chunks]``, the chunks shared out over the processes (contiguous runs, as accelerate's
    ``split_between_processes`` cuts them), the results gathered on every process in the original order.

    Every process must call it with the same ``chunks`` (it is collective). ``fn``'s results travel by pickling:
    return CPU tensors, numbers or lists, not CUDA tensors.
    """
    state = state or process_state()
    indexed = list(enumerate(chunks))
    if state.num_processes == 1:
        return [fn(c) for _, c in tqdm(indexed, desc=desc, disable=desc is None)]
    with state.split_between_processes(indexed) as mine:
        done = [(i, fn(c)) for i, c in tqdm(mine, desc=desc, disable=desc is None or not state.is_local_main_process)]
    gathered = gather_object(done)
    results: dict[int, Any] = dict(gathered)
    if len(results) != len(chunks):
        raise RuntimeError(f"gathered {len(results)} of {len(chunks)} chunks")
    return [results[i] for i in range(len(chunks))]
