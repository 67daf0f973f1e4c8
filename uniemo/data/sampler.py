"""Deterministic, resumable, shardable sampling for the training loops.

``EpochSampler`` draws one permutation per epoch from (seed, epoch) and hands each process a contiguous
slice of every global batch, so a run with P processes and per-process batch B/P sees exactly the global
batches of a single-process run with batch B. ``start_batch`` skips the batches already done when resuming
mid-epoch (no images are loaded for them). ``SeededAugmentation`` makes random augmentation a function of
(seed, epoch, index) instead of the global RNG, so resuming or changing the worker count changes nothing.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset, Sampler


class EpochSampler(Sampler[tuple[int, int]]):
    def __init__(self, num_samples: int, global_batch_size: int, seed: int = 0, rank: int = 0,
                 world_size: int = 1, shuffle: bool = True):
        if global_batch_size % world_size:
            raise ValueError(
                f"batch_size ({global_batch_size}) must be divisible by the number of processes ({world_size})"
            )
        if num_samples < global_batch_size:
            raise ValueError(f"the dataset has {num_samples} samples, fewer than one batch ({global_batch_size})")
        self.num_samples, self.global_batch_size = num_samples, global_batch_size
        self.seed, self.rank, self.world_size, self.shuffle = seed, rank, world_size, shuffle
        self.epoch, self.start_batch = 0, 0

    @property
    def batches_per_epoch(self) -> int:
        return self.num_samples // self.global_batch_size  # the last partial batch is dropped

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.start_batch) * (self.global_batch_size // self.world_size)

    def __iter__(self):
        """Yields ``(epoch, index)``: the epoch travels with each index, so that ``SeededAugmentation`` seeds from
        it even inside persistent loader workers (which keep their own copy of the dataset across epochs)."""
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.num_samples, generator=g).tolist()
        else:
            order = list(range(self.num_samples))
        per_rank = self.global_batch_size // self.world_size
        for b in range(self.start_batch, self.batches_per_epoch):
            start = b * self.global_batch_size + self.rank * per_rank
            for index in order[start:start + per_rank]:
                yield self.epoch, index


class SeededAugmentation(Dataset):
    """Wraps a dataset so that item i of epoch e is augmented with the RNG seeded by (seed, e, i)."""

    def __init__(self, dataset: Dataset, seed: int = 0):
        self.dataset, self.seed, self.epoch = dataset, seed, 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: int | tuple[int, int]):
        """``dataset[(epoch, index)]`` (what ``EpochSampler`` yields), or ``dataset[index]`` at ``self.epoch``."""
        epoch, index = key if isinstance(key, tuple) else (self.epoch, key)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed((self.seed * 1_000_003 + epoch) * 10_000_019 + index)
            return self.dataset[index]

    def __getattr__(self, name):  # attribute_vocab(), labels, skipped ... of the wrapped dataset
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)
