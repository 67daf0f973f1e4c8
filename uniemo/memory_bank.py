"""EmoSym's online emotional memory bank (docs/method.md section 7).

Every K steps of joint training the current model generates M images per emotion, explicit feedback's
filter (``uniemo.filtering.select_feedback``) keeps the good ones, and they enter a bounded bank. The bank
takes the place of the real training samples the classifier is most confident about, so the training
set keeps its size N and the generated share p stays fixed:

    capacity B = round(p · N)           slots of the training set given to the bank
    replaced   = the B real samples with the highest confidence (computed on the *real* images)
    training   = (real samples minus replaced) + B bank slots        (N items in all)

The bank keeps its newest ``capacity`` images (first in, first out). While it holds fewer distinct images
than B, its images fill the B slots in turn (``repeat=True``, the default, so p holds from the first
update); ``repeat=False`` gives the bank only as many slots as it has images (p grows until it is full).

EmoSym's released code computes both confidence lists from the *generated* images, so the real samples it
drops are chosen by a score of other images; here ``update`` takes the confidences of the real samples
themselves (the caller computes them with the current classifier on the real images).

Symbol -> code name: N -> ``num_real``; p -> ``proportion``; B -> ``capacity``; the bank -> ``items``;
replaced real samples -> ``replaced``. ``MemoryBank`` holds no model and no image, so it is unit-tested
without diffusion; ``BankedDataset`` is the training set it describes. Nothing here is adapted from
another repository.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from uniemo.data.base import EmotionDataset, ImageEntry
from uniemo.data.feedback import FeedbackDataset


class MemoryBank:
    """Which real samples the bank replaces, and which bank image fills each freed slot.

    Args:
        num_real: N, the size of the real training set (and of the training set the sampler sees).
        proportion: p in (0, 1), the share of the training set given to generated images.
        repeat: fill all ``capacity`` slots even while the bank holds fewer images (p fixed from the first
            update); ``False`` gives the bank one slot per image it holds.
    """

    def __init__(self, num_real: int, proportion: float, repeat: bool = True):
        if num_real < 1:
            raise ValueError(f"num_real must be >= 1, got {num_real}")
        if not 0.0 < proportion < 1.0:
            raise ValueError(f"proportion must lie in (0, 1), got {proportion}")
        self.num_real, self.proportion, self.repeat = num_real, float(proportion), repeat
        self.capacity = int(round(proportion * num_real))
        if self.capacity < 1:
            raise ValueError(
                f"proportion {proportion} of {num_real} real samples rounds to no bank slot; use a larger proportion"
            )
        self.items: list[ImageEntry] = []  # newest first
        self.replaced: list[int] = []  # real indices currently left out, ascending
        self.updates = 0

    @property
    def num_slots(self) -> int:
        """How many training slots the bank fills now (0 before any image arrived)."""
        if not self.items:
            return 0
        return self.capacity if self.repeat else min(self.capacity, len(self.items))

    def update(self, generated_items: Sequence[ImageEntry],
               real_confidences: Sequence[float] | torch.Tensor) -> list[int]:
        """Add freshly filtered images and choose again which real samples they replace.

        Args:
            generated_items: the kept images of this round (label = intended emotion), newest last; they
                push the oldest bank images out once the bank holds ``capacity`` images.
            real_confidences: (N,) the current classifier's confidence on each *real* training sample
                (computed from the real images); NaN marks a sample that was not scored and is never
                replaced. Ties go to the lower index (stable sort).

        Returns:
            The real indices now replaced by the bank (ascending), ``num_slots`` of them.
        """
        confidences = (real_confidences.detach().cpu().double().numpy()
                       if isinstance(real_confidences, torch.Tensor) else np.asarray(real_confidences, float))
        if confidences.shape != (self.num_real,):
            raise ValueError(f"real_confidences must hold one value per real sample ({self.num_real}), "
                             f"got shape {confidences.shape}")
        self.items = (list(reversed(list(generated_items))) + self.items)[:self.capacity]
        self.updates += 1
        scored = np.flatnonzero(~np.isnan(confidences))
        if len(scored) < self.num_slots:
            raise ValueError(f"only {len(scored)} real samples were scored, fewer than the {self.num_slots} "
                             "bank slots to free: score more real samples")
        # The most confident real samples are the easiest; they give their slots to generated images.
        order = scored[np.argsort(-confidences[scored], kind="stable")]
        self.replaced = sorted(int(i) for i in order[:self.num_slots])
        return list(self.replaced)

    def sources(self) -> list[tuple[str, int]]:
        """The training set slot by slot: ``("real", i)`` or ``("bank", j)`` (j indexes ``items``); N entries."""
        removed = set(self.replaced)
        out = [("real", i) for i in range(self.num_real) if i not in removed]
        out += [("bank", s % len(self.items)) for s in range(self.num_slots)]
        return out

    def generated_share(self) -> float:
        """The share of the training set filled by bank slots (p once the bank holds images)."""
        return self.num_slots / self.num_real

    def state_dict(self) -> dict[str, Any]:
        """A JSON-able state (for checkpoints: the bank images themselves stay on disk)."""
        return {"num_real": self.num_real, "proportion": self.proportion, "repeat": self.repeat,
                "updates": self.updates, "replaced": list(self.replaced),
                "items": [{"path": e.path, "label": e.label} for e in self.items]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["num_real"] != self.num_real:
            raise ValueError(f"the saved bank is for {state['num_real']} real samples, this run has {self.num_real}")
        self.items = [ImageEntry(path=e["path"], label=int(e["label"])) for e in state["items"]]
        self.replaced = [int(i) for i in state["replaced"]]
        self.updates = int(state.get("updates", 0))

    def __repr__(self) -> str:
        return (f"MemoryBank(num_real={self.num_real}, capacity={self.capacity}, items={len(self.items)}, "
                f"slots={self.num_slots}, updates={self.updates})")


class BankedDataset(Dataset):
    """The training set a ``MemoryBank`` describes: N items, real ones and bank images.

    Real slots return the real dataset's record unchanged (``generated`` False); bank slots return a record
    of the same format with the intended emotion as label, no attributes (``scene`` None, ``objects`` [],
    so L_S / L_O are masked) and ``generated`` True. Call ``refresh()`` after every ``bank.update``.

    Args:
        real: the real training set (an ``EmotionDataset``).
        bank: the bank deciding the slots.
        transform: PIL image -> tensor for bank images (the real set's training transform).
    """

    def __init__(self, real: EmotionDataset, bank: MemoryBank,
                 transform: Callable[[Image.Image], Any] | None = None):
        if len(real) != bank.num_real:
            raise ValueError(f"the bank is for {bank.num_real} real samples, the dataset has {len(real)}")
        self.real, self.bank = real, bank
        self.transform = transform if transform is not None else real.transform
        self.labels = real.labels
        self.refresh()

    def refresh(self) -> None:
        """Re-read the bank's slots (after ``update`` or ``load_state_dict``)."""
        self._sources = self.bank.sources()
        self._generated = FeedbackDataset(self.bank.items, self.labels, self.transform)

    def __len__(self) -> int:
        return len(self._sources)

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        kind, i = self._sources[index]
        return self.real[i] if kind == "real" else self._generated[i]

    def attribute_vocab(self) -> tuple[list[str], list[str]]:
        return self.real.attribute_vocab()


def confidence_pool(num_real: int, pool_size: int | None, seed: int) -> list[int]:
    """The real indices to score: all of them, or a seeded random subset of ``pool_size`` (ascending)."""
    if pool_size is None or pool_size >= num_real:
        return list(range(num_real))
    g = torch.Generator().manual_seed(seed)
    return sorted(torch.randperm(num_real, generator=g)[:pool_size].tolist())

