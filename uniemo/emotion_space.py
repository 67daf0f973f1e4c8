"""The emotion space: per-emotion diagonal Gaussians of the three embeddings (docs/method.md section 6).

After stage 2 the trained encoder runs (eval mode, evaluation transform) over the training split; for each
emotion and each of ``cls_embed``, ``scene_embed``, ``object_embed`` we store the mean and the standard
deviation per channel. Generating from a label alone samples the three embeddings independently from
that emotion's Gaussians. Saved as ``emotion_space.safetensors`` (tensors + emotion list in the metadata).

``components=K > 1`` (ours, not the paper's) fits K Gaussians per emotion instead of one: the emotion's images
are split by k-means on their three embeddings together, each part gets its own diagonal Gaussian and a weight
(its share of the images), and a sample first draws a part, then the three embeddings from that part's Gaussians.
An emotion whose images form separate groups (in EmoShapes every emotion fills two (scene, object) cells, and
amusement's two cells share their scene and object groups crosswise with sadness's) keeps its groups apart; one
Gaussian would sample between them, scenes of one cell with objects of the other. The per-emotion moments
(``means``, ``stds``) are stored either way; the file gains ``<kind>_component_mean`` / ``_std`` (E, K, D) and
``component_weights`` (E, K) only when K > 1, so a one-Gaussian file is unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from torch import Tensor

from uniemo.checkpoint import save_state_dict

KINDS = ("cls", "scene", "object")
FILENAME = "emotion_space.safetensors"


class EmotionSpace:
    """Means and stds (E, D) for each kind of feature, E = number of emotions; with ``components``, also K
    Gaussians per emotion: ``{"weights": (E, K), "means": {kind: (E, K, D)}, "stds": {kind: (E, K, D)}}``.

    The kinds are UniEmo's three (``KINDS``) by default; ``kinds`` names others (EmoSym's ``("emo", "ctx")``).
    """

    def __init__(self, emotions: tuple[str, ...], means: dict[str, Tensor], stds: dict[str, Tensor],
                 counts: Tensor, components: dict | None = None, kinds: tuple[str, ...] = KINDS):
        self.kinds = tuple(kinds)
        missing = [k for k in self.kinds if k not in means or k not in stds]
        if missing:
            raise ValueError(f"emotion space lacks {missing}; expected {self.kinds}")
        self.emotions = tuple(emotions)
        self.means, self.stds, self.counts = means, stds, counts
        self.components = components

    @property
    def num_components(self) -> int:
        return 1 if self.components is None else int(self.components["weights"].shape[1])

    @classmethod
    def fit(cls, features: dict[str, Tensor], labels: Tensor, emotions: tuple[str, ...],
            min_std: float = 1e-6, components: int = 1, kinds: tuple[str, ...] = KINDS) -> EmotionSpace:
        """Fit from gathered features.

        Args:
            features: ``{kind: (N, D)}`` over the training split, for each of ``kinds`` (UniEmo: ``{"cls": ...,
                "scene": ..., "object": ...}``).
            labels: (N,) emotion indices.
            emotions: the label names (index order).
            components: Gaussians per emotion (1: the paper's emotion space).
        """
        if components < 1:
            raise ValueError(f"components must be >= 1, got {components}")
        labels = labels.long().cpu()
        counts = torch.bincount(labels, minlength=len(emotions))
        empty = [emotions[i] for i in range(len(emotions)) if counts[i] == 0]
        if empty:
            raise ValueError(f"no training images for emotion(s) {empty}: cannot fit their Gaussians")
        means, stds = {}, {}
        for kind in kinds:
            x = features[kind].float().cpu()
            means[kind] = torch.stack([x[labels == e].mean(0) for e in range(len(emotions))])
            # population std (a single image gives std 0, clamped to min_std)
            stds[kind] = torch.stack([x[labels == e].std(0, unbiased=False) for e in range(len(emotions))])
            stds[kind] = stds[kind].clamp_min(min_std)
        if components == 1:
            return cls(emotions, means, stds, counts, kinds=kinds)
        parts = {"weights": [], "means": {k: [] for k in kinds}, "stds": {k: [] for k in kinds}}
        for e in range(len(emotions)):
            rows = {k: features[k].float().cpu()[labels == e] for k in kinds}
            assignment = kmeans(torch.cat([_standardized(rows[k]) for k in kinds], dim=1), components)
            parts["weights"].append(torch.bincount(assignment, minlength=components).float() / len(assignment))
            for kind in kinds:
                x = rows[kind]
                # an empty part keeps the emotion's own moments (its weight is 0: it is never drawn)
                parts["means"][kind].append(torch.stack([x[assignment == j].mean(0) if (assignment == j).any()
                                                         else means[kind][e] for j in range(components)]))
                parts["stds"][kind].append(torch.stack([x[assignment == j].std(0, unbiased=False)
                                                        if (assignment == j).any() else stds[kind][e]
                                                        for j in range(components)]).clamp_min(min_std))
        mixture = {"weights": torch.stack(parts["weights"]),
                   "means": {k: torch.stack(v) for k, v in parts["means"].items()},
                   "stds": {k: torch.stack(v) for k, v in parts["stds"].items()}}
        return cls(emotions, means, stds, counts, mixture, kinds=kinds)

    def index(self, emotion: str | int) -> int:
        if isinstance(emotion, int):
            if not 0 <= emotion < len(self.emotions):
                raise ValueError(f"emotion index {emotion} out of range 0..{len(self.emotions) - 1}")
            return emotion
        if emotion not in self.emotions:
            raise ValueError(f"unknown emotion {emotion!r}; expected one of {', '.join(self.emotions)}")
        return self.emotions.index(emotion)

    def sample(self, emotion: str | int, num: int, generator: torch.Generator | None = None,
               scale: float = 1.0, component: int | None = None) -> dict[str, Tensor]:
        """Draw ``num`` independent samples of each kind of feature for one emotion.

        Args:
            scale: multiplies the stds (0 gives the means: the emotion's centroid).
            component: draw from this part of a mixture only (default: a part per sample, by the weights).
        Returns:
            ``{kind: (num, D)}`` (UniEmo: ``{"cls": ..., "scene": ..., "object": ...}``)
        """
        e = self.index(emotion)
        if component is not None:
            if self.components is None and component != 0:
                raise ValueError(f"this emotion space has one Gaussian per emotion: component must be 0 or None, "
                                 f"got {component}")
            if self.components is not None and not 0 <= component < self.num_components:
                raise ValueError(f"component must lie in 0..{self.num_components - 1}, got {component}")
        if self.components is not None:  # a part per sample, by its weight, then that part's Gaussians
            part = (torch.full((num,), component, dtype=torch.long) if component is not None else
                    torch.multinomial(self.components["weights"][e], num, replacement=True, generator=generator))
        out = {}
        for kind in self.kinds:
            if self.components is None:
                mean, std = self.means[kind][e], self.stds[kind][e]
            else:
                mean, std = self.components["means"][kind][e][part], self.components["stds"][kind][e][part]
            noise = torch.randn((num, mean.shape[-1]), generator=generator, dtype=mean.dtype)
            out[kind] = mean + scale * std * noise
        return out

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / FILENAME
        tensors = {f"{k}_mean": self.means[k] for k in self.kinds}
        tensors.update({f"{k}_std": self.stds[k] for k in self.kinds})
        tensors["counts"] = self.counts
        if self.components is not None:
            tensors["component_weights"] = self.components["weights"]
            tensors.update({f"{k}_component_mean": self.components["means"][k] for k in self.kinds})
            tensors.update({f"{k}_component_std": self.components["stds"][k] for k in self.kinds})
        metadata = {"format": "pt", "emotions": json.dumps(list(self.emotions))}
        if self.kinds != KINDS:  # a UniEmo file stays as it was
            metadata["kinds"] = json.dumps(list(self.kinds))
        save_state_dict(tensors, path, metadata=metadata)
        return path

    @classmethod
    def load(cls, directory: str | Path) -> EmotionSpace:
        path = Path(directory) / FILENAME
        if not path.is_file():
            raise FileNotFoundError(f"no {FILENAME} in {str(directory)!r}: the model has no emotion space")
        with safe_open(str(path), framework="pt") as f:
            emotions = tuple(json.loads(f.metadata()["emotions"]))
            kinds = tuple(json.loads(f.metadata().get("kinds", json.dumps(list(KINDS)))))
            means = {k: f.get_tensor(f"{k}_mean") for k in kinds}
            stds = {k: f.get_tensor(f"{k}_std") for k in kinds}
            counts = f.get_tensor("counts")
            components = None
            if "component_weights" in f.keys():
                components = {"weights": f.get_tensor("component_weights"),
                              "means": {k: f.get_tensor(f"{k}_component_mean") for k in kinds},
                              "stds": {k: f.get_tensor(f"{k}_component_std") for k in kinds}}
        return cls(emotions, means, stds, counts, components, kinds=kinds)

    def allclose(self, other: EmotionSpace, atol: float = 1e-5) -> bool:
        same = self.emotions == other.emotions and self.kinds == other.kinds and \
            self.num_components == other.num_components and all(
                torch.allclose(self.means[k], other.means[k], atol=atol)
                and torch.allclose(self.stds[k], other.stds[k], atol=atol) for k in self.kinds)
        if not same or self.components is None:
            return same
        mine, theirs = self.components, other.components
        return torch.allclose(mine["weights"], theirs["weights"], atol=atol) and all(
            torch.allclose(mine[part][k], theirs[part][k], atol=atol) for part in ("means", "stds")
            for k in self.kinds)


def _standardized(x: Tensor) -> Tensor:
    """Each channel to zero mean and unit std (over the rows), then scaled by 1/sqrt(D): the three embeddings
    weigh the same in k-means whatever their widths."""
    return (x - x.mean(0)) / x.std(0, unbiased=False).clamp_min(1e-6) / x.shape[1] ** 0.5


def kmeans(x: Tensor, k: int, iterations: int = 50, restarts: int = 10, seed: int = 0) -> Tensor:
    """Lloyd's k-means on the rows of ``x`` (N, F), deterministic; returns (N,) labels.

    Several starts, the partition of least within-cluster sum of squares wins: farthest-point seeding (the first
    centre the row farthest from the mean, each next one the row farthest from the centres chosen) and
    ``restarts`` k-means++ seedings drawn from a generator seeded by ``seed``. Farthest-point seeding alone picks
    outliers (a mislabelled image far from its label's groups) and can end with one cluster of outliers and one
    that spans two groups; the least-inertia start does not.
    """
    if len(x) <= k:
        return torch.arange(len(x)) % k
    starts = [_farthest_point_centres(x, k)]
    generator = torch.Generator().manual_seed(seed)
    starts += [_kmeans_plus_plus_centres(x, k, generator) for _ in range(restarts)]
    best, best_inertia = None, float("inf")
    for centres in starts:
        labels, inertia = _lloyd(x, centres, iterations)
        if inertia < best_inertia - 1e-9:
            best, best_inertia = labels, inertia
    return best


def _farthest_point_centres(x: Tensor, k: int) -> Tensor:
    centres = [x[(x - x.mean(0)).norm(dim=1).argmax()]]
    for _ in range(1, k):
        distance = torch.cdist(x, torch.stack(centres)).min(dim=1).values
        centres.append(x[distance.argmax()])
    return torch.stack(centres)


def _kmeans_plus_plus_centres(x: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """k-means++ seeding: each next centre drawn with probability proportional to its squared distance."""
    centres = [x[torch.randint(len(x), (1,), generator=generator)].squeeze(0)]
    for _ in range(1, k):
        weight = torch.cdist(x, torch.stack(centres)).min(dim=1).values.square()
        if weight.sum() <= 0:  # every row is a centre already
            weight = torch.ones(len(x))
        centres.append(x[torch.multinomial(weight, 1, generator=generator)].squeeze(0))
    return torch.stack(centres)


def _lloyd(x: Tensor, centres: Tensor, iterations: int) -> tuple[Tensor, float]:
    """Lloyd's iterations from ``centres``; returns the labels and their within-cluster sum of squares."""
    k = len(centres)
    labels = torch.cdist(x, centres).argmin(dim=1)
    for _ in range(iterations):
        centres = torch.stack([x[labels == j].mean(0) if (labels == j).any() else centres[j] for j in range(k)])
        new = torch.cdist(x, centres).argmin(dim=1)
        if torch.equal(new, labels):
            break
        labels = new
    centres = torch.stack([x[labels == j].mean(0) if (labels == j).any() else centres[j] for j in range(k)])
    return labels, float((x - centres[labels]).square().sum())
