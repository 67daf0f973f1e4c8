"""The real images FID compares against, and their statistics kept on disk between scoring runs.

The reference of an emotion is the image files of ``<reference>/<emotion>/`` (``reference_images``) or the
images of that emotion in a dataset split, read where they lie (``reference_from_dataset``).

Extracting the reference features is most of what FID costs (thousands of real images per emotion) and they do
not change between runs, so their statistics (per emotion: count, mean and covariance; the same for all
emotions pooled, the aggregated FID's) are kept in ``<cache dir>/<key>.pt``. The key is the SHA-256 of

    the reference set    per emotion, its files (sorted) with their sizes and modification times
    the extractor        its name and library version, the feature layer, the weights (a file or folder: every
                         file's path, size and modification time; a Hub id: the id), the image size, the device
                         type (cpu / cuda)
    the cache format     ``CACHE_FORMAT`` (raised whenever the extraction itself changes)

so adding, removing or rewriting one reference image, or other weights, misses the cache. The file is written by
the main process alone, atomically (a temporary file in the cache folder, then ``os.replace``). Under several
processes the main process decides hit or miss and tells the others, so they all take the same road.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import PartialState
from accelerate.utils import broadcast_object_list

from uniemo.data import DATASET_NAMES, build_dataset
from uniemo.data.base import list_images
from uniemo.metrics import feature_statistics

logger = logging.getLogger(__name__)

CACHE_FORMAT = 1
Statistics = tuple[np.ndarray, np.ndarray]  # (mu (D,), sigma (D, D)), float64


# ----------------------------------------------------------------------------------------------------------
# the reference images


def reference_images(folder: Path, emotions: Sequence[str]) -> dict[str, list[str]]:
    """``folder/<emotion>/**`` image files per emotion (an emotion without a folder gets none)."""
    out = {}
    for emotion in emotions:
        sub = folder / emotion
        out[emotion] = [str(sub / p) for p in list_images(sub)] if sub.is_dir() else []
    return out


def reference_from_dataset(spec: str) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """``NAME:ROOT:SPLIT`` -> (the split's image files per emotion name, a description for the result)."""
    name, sep, rest = spec.partition(":")
    root, sep2, split = rest.rpartition(":")
    if not sep or not sep2 or not root or not split:
        raise ValueError(f"--reference-from-dataset takes NAME:ROOT:SPLIT (e.g. emoshapes:data/emoshapes:test), "
                         f"got {spec!r}")
    if name not in DATASET_NAMES:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASET_NAMES)}")
    dataset = build_dataset(name, root, split)
    images: dict[str, list[str]] = {}
    for entry in dataset.entries:
        images.setdefault(dataset.labels[entry.label], []).append(os.fspath(entry.path))
    return images, {"dataset": name, "root": root, "split": split, "num_images": len(dataset.entries)}


# ----------------------------------------------------------------------------------------------------------
# the key


def path_identity(path: str | os.PathLike) -> list[Any]:
    """A file as [absolute path, size, modification time in ns]; a folder as the list of its files' (recursive,
    sorted)."""
    path = os.path.abspath(path)
    if os.path.isdir(path):
        return [path_identity(os.path.join(folder, name)) for folder, _, names in sorted(os.walk(path))
                for name in sorted(names)]
    st = os.stat(path)
    return [path, st.st_size, st.st_mtime_ns]


def cache_key(reference: Mapping[str, Sequence[str]], extractor: Mapping[str, Any]) -> tuple[str, str]:
    """(hex digest, the JSON it is the digest of) for the reference set ``{emotion: files}`` and the extractor's
    description (``extractor`` must be JSON-able)."""
    material = json.dumps({"format": CACHE_FORMAT, "extractor": dict(extractor),
                           "reference": {e: sorted(path_identity(p) for p in files)
                                         for e, files in sorted(reference.items())}}, sort_keys=True)
    return hashlib.sha256(material.encode()).hexdigest(), material


# ----------------------------------------------------------------------------------------------------------
# the statistics and their file


def statistics_of(features: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Per emotion and pooled (all emotions' features together) FID statistics of ``{emotion: (N, D)}``."""
    return {"per_emotion": {e: feature_statistics(f) for e, f in features.items()},
            "pooled": feature_statistics(torch.cat(list(features.values()))),
            "counts": {e: len(f) for e, f in features.items()}}


def save_statistics(path: Path, stats: dict[str, Any], material: str) -> None:
    """Write ``stats`` with their key material to ``path`` atomically."""
    def pack(pair: Statistics) -> dict[str, torch.Tensor]:
        return {"mu": torch.from_numpy(pair[0]), "sigma": torch.from_numpy(pair[1])}

    payload = {"format": CACHE_FORMAT, "key": material, "counts": dict(stats["counts"]),
               "per_emotion": {e: pack(s) for e, s in stats["per_emotion"].items()},
               "pooled": pack(stats["pooled"])}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_statistics(path: Path, material: str) -> dict[str, Any]:
    """The statistics saved at ``path`` (``weights_only``), refused unless written for exactly ``material``."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload.get("format") != CACHE_FORMAT or payload.get("key") != material:
        raise ValueError(f"{path} was written for another reference set or extractor")

    def unpack(entry: dict[str, torch.Tensor]) -> Statistics:
        return entry["mu"].double().numpy(), entry["sigma"].double().numpy()

    return {"per_emotion": {e: unpack(s) for e, s in payload["per_emotion"].items()},
            "pooled": unpack(payload["pooled"]), "counts": dict(payload["counts"])}


def reference_statistics(reference: Mapping[str, Sequence[str]],
                         extract: Callable[[Mapping[str, Sequence[str]]], Mapping[str, torch.Tensor]],
                         extractor: Mapping[str, Any], cache_dir: str | os.PathLike | None,
                         state: PartialState) -> tuple[dict[str, Any], dict[str, Any]]:
    """The FID statistics of ``reference`` (``{emotion: files}``, every list non-empty), from the cache when it
    holds them, else from ``extract(reference)`` (``{emotion: (N, D) features}``, collective under several
    processes), then saved. ``cache_dir`` ``None`` neither reads nor writes a cache.

    Returns:
        (``statistics_of``'s dict, ``{"reference_cache": "hit" | "miss" | "off", "reference_cache_file",
        "reference_seconds"}``)
    """
    t0 = time.time()
    if cache_dir is None:
        stats = statistics_of(extract(reference))
        return stats, {"reference_cache": "off", "reference_cache_file": None,
                       "reference_seconds": round(time.time() - t0, 3)}
    digest, material = cache_key(reference, extractor)
    path = Path(cache_dir).expanduser() / f"{digest}.pt"
    stats = None
    if state.is_main_process and path.is_file():
        try:
            stats = load_statistics(path, material)
        except Exception as error:  # a damaged or foreign file is replaced, never trusted
            logger.warning("FID reference cache %s is unusable (%s): extracting the reference again", path, error)
    hit = [stats is not None]
    if state.num_processes > 1:
        broadcast_object_list(hit)  # the main process's verdict, so that all take the same road
        if hit[0] and stats is None:
            stats = load_statistics(path, material)
    if hit[0]:
        logger.info("FID reference statistics: cache hit, %s (reference features not extracted again)", path)
        status = "hit"
    else:
        stats = statistics_of(extract(reference))
        if state.is_main_process:
            save_statistics(path, stats, material)
        logger.info("FID reference statistics: cache miss, extracted and written to %s", path)
        status = "miss"
    return stats, {"reference_cache": status, "reference_cache_file": str(path),
                   "reference_seconds": round(time.time() - t0, 3)}
