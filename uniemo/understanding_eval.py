"""Emotion-understanding accuracy of a trained classifier on a dataset split.

A model's scores meet a dataset's labels under one of ``PROTOCOLS``, always by label name and never by index
(``resolve_protocol`` picks it, ``apply_protocol`` brings scores and labels into one label space): the same
names in any order (``same-label-space``, or ``zero-shot`` when the model's ``uniemo.json`` names another
training set), or 8 emotions against positive/negative (``binary-collapse``, probabilities summed over
``POSITIVE_EMOTIONS``); any other pairing is refused. Twitter I/II are 5-fold cross-validation: one held-out
fold, or every fold with their mean, with one model per fold (``MODEL/foldK``) or one model on all of them.

``evaluate(model, dataset, data_root, ...)`` returns the result eval/understanding.py writes as JSON;
eval/tiny_report.py reads the accuracy of the bundled model from it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import accelerate
import torch
import torchvision
from accelerate import Accelerator
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from uniemo.classifier import EmoClassifier
from uniemo.constants import EMOTIONS, POSITIVE_EMOTIONS, SENTIMENTS, emotion_to_sentiment
from uniemo.data import build_dataset, build_transform, collate_records
from uniemo.metrics import align_logits, classification_report, collapse_to_binary, fold_summary
from uniemo.distributed import cpu_processes

logger = logging.getLogger(__name__)

TWITTER_DATASETS: tuple[str, ...] = ("twitter1", "twitter2")
NUM_TWITTER_FOLDS = 5  # the Twitter I/II protocol
PROTOCOLS: tuple[str, ...] = ("same-label-space", "zero-shot", "binary-collapse")


@dataclass(frozen=True)
class Protocol:
    """How a model's scores meet a dataset's labels: ``name`` is one of ``PROTOCOLS``."""

    name: str
    description: str


@dataclass
class ModelSource:
    """Where a classifier was found: the folder named on the command line, the classifier folder, and the
    ``uniemo.json`` descriptor of the model folder around it (``{}`` for a bare classifier folder)."""

    path: Path
    classifier_dir: Path
    descriptor: dict[str, Any] = field(default_factory=dict)

    @property
    def trained_on(self) -> str | None:
        dataset = self.descriptor.get("dataset")
        return str(dataset) if dataset else None


@dataclass
class SplitResult:
    """One evaluated (model, dataset split): report, counts and the skipped image paths."""

    fold: int | None
    source: ModelSource
    protocol: Protocol
    report: dict[str, Any]
    num_listed: int
    skipped_paths: list[str]
    scores: torch.Tensor  # (N, C) in the report's label space, kept for pooling the folds
    labels: torch.Tensor  # (N,)


def check_request(dataset: str, fold: int | None, all_folds: bool, batch_size: int, num_workers: int) -> None:
    """Option combinations that cannot work, caught before any model or image is read."""
    twitter = dataset in TWITTER_DATASETS
    if fold is not None and not twitter:
        raise ValueError(f"--fold applies to {' and '.join(TWITTER_DATASETS)} only, not {dataset}")
    if all_folds and not twitter:
        raise ValueError(f"--all-folds applies to {' and '.join(TWITTER_DATASETS)} only, not {dataset}")
    if all_folds and fold is not None:
        raise ValueError("pass either --fold K (one fold) or --all-folds (every fold), not both")
    if fold is not None and not 0 <= fold < NUM_TWITTER_FOLDS:
        raise ValueError(f"--fold must be in [0, {NUM_TWITTER_FOLDS}), got {fold}")
    if batch_size < 1 or num_workers < 0:
        raise ValueError("--batch-size must be >= 1 and --num-workers >= 0")


# ----------------------------------------------------------------------------------------------------------
# Model folders and protocols


def locate_model(path: str | Path) -> ModelSource:
    """Find the classifier in a model folder, a stage-1 run folder or a classifier folder.

    Args:
        path: ``M`` with ``M/classifier/config.json`` (a model folder or stage-1 ``final/``), with
            ``M/final/classifier/config.json`` (a stage-1 run folder), or with ``M/config.json`` (a classifier
            folder; the ``uniemo.json`` of its parent is read when it is the parent's ``classifier/``).

    Returns:
        The ``ModelSource``.

    Raises:
        FileNotFoundError: naming ``path`` and the layouts looked for.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"model folder {path} does not exist")
    for root in (path, path / "final"):
        if (root / "classifier" / "config.json").is_file():
            return ModelSource(path, root / "classifier", _read_descriptor(root))
    if (path / "config.json").is_file():
        parent = path.resolve().parent
        descriptor = _read_descriptor(parent) if path.resolve().name == "classifier" else {}
        return ModelSource(path, path, descriptor)
    raise FileNotFoundError(
        f"no classifier in {path}: expected {path / 'classifier' / 'config.json'} (a model folder or a stage-1 "
        f"final/), {path / 'final' / 'classifier' / 'config.json'} (a stage-1 run folder) or "
        f"{path / 'config.json'} + model.safetensors (a classifier folder)"
    )


def _read_descriptor(folder: Path) -> dict[str, Any]:
    path = folder / "uniemo.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def resolve_protocol(
    model_labels: Sequence[str], dataset_labels: Sequence[str], dataset: str, trained_on: str | None = None
) -> Protocol:
    """Pick the protocol under which a model with ``model_labels`` is scored on ``dataset``.

    Args:
        model_labels: the model's label list (its config's ``emotions``).
        dataset_labels: the dataset's label list.
        dataset: the dataset's name.
        trained_on: the dataset the model was trained on, from its ``uniemo.json`` (``None`` when unknown).

    Returns:
        The ``Protocol``.

    Raises:
        ValueError: when the label spaces neither match by name nor collapse to binary sentiment.
    """
    model_set = {name.lower() for name in model_labels}
    data_set = {name.lower() for name in dataset_labels}
    if model_set == data_set:
        if trained_on and trained_on.lower() != dataset.lower():
            return Protocol("zero-shot", f"a model trained on {trained_on}, evaluated on {dataset}; "
                                         "labels matched by name")
        return Protocol("same-label-space", "the model's labels are the dataset's; scores matched by name")
    positive = ", ".join(POSITIVE_EMOTIONS)
    if model_set == set(EMOTIONS) and data_set == set(SENTIMENTS):
        return Protocol("binary-collapse", f"8-emotion softmax collapsed to 2 classes: p(positive) = sum over "
                                           f"{positive}; p(negative) = sum over the other four")
    if model_set == set(SENTIMENTS) and data_set == set(EMOTIONS):
        return Protocol("binary-collapse", f"binary model; the dataset's labels collapsed: {positive} -> "
                                           "positive, the other four -> negative")
    raise ValueError(
        f"the model's labels ({', '.join(model_labels)}) cannot be matched to {dataset}'s "
        f"({', '.join(dataset_labels)}). Protocols: same-label-space / zero-shot (the same label names in any "
        f"order: an EmoSet model on emoset, emoshapes or fi), and binary-collapse (an 8-emotion model on "
        f"{' or '.join(TWITTER_DATASETS)}, or a binary model on an 8-emotion dataset). Evaluate {dataset} with "
        f"a model trained on its own {len(dataset_labels)} classes."
    )


def apply_protocol(
    protocol: Protocol,
    logits: torch.Tensor,
    labels: torch.Tensor,
    model_labels: Sequence[str],
    dataset_labels: Sequence[str],
) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    """Bring the model's scores and the dataset's labels into one label space.

    Args:
        protocol: from ``resolve_protocol``.
        logits: (N, M) model logits, in ``model_labels`` order.
        labels: (N,) indices into ``dataset_labels``.
        model_labels: the model's M labels.
        dataset_labels: the dataset's labels.

    Returns:
        scores (N, C), labels (N,) and the C class names the report is computed in: the dataset's labels,
        or ``SENTIMENTS`` (negative, positive) after a binary collapse.
    """
    if protocol.name in ("same-label-space", "zero-shot"):
        return align_logits(logits, model_labels, dataset_labels), labels, tuple(dataset_labels)
    if protocol.name != "binary-collapse":
        raise ValueError(f"unknown protocol {protocol.name!r}; expected one of {', '.join(PROTOCOLS)}")
    lowered = [name.lower() for name in model_labels]
    if set(lowered) == set(EMOTIONS):
        # Collapse probabilities, not logits: a sum of logits is not a score of the merged class.
        # Only the probabilities are taken from collapse_to_binary; the binary labels come from the dataset.
        probs = logits.float().softmax(dim=1)
        unused_labels = torch.zeros(len(probs), dtype=torch.long)
        binary, _ = collapse_to_binary(probs, unused_labels, lowered, POSITIVE_EMOTIONS)
        return align_logits(binary, SENTIMENTS, dataset_labels), labels, tuple(dataset_labels)
    # A binary model on an 8-emotion dataset: the labels collapse instead.
    sentiment = torch.tensor([SENTIMENTS.index(emotion_to_sentiment(name.lower())) for name in dataset_labels])
    return align_logits(logits, model_labels, SENTIMENTS), sentiment[labels.long()], SENTIMENTS


def plan_runs(model: str | Path, dataset: str, fold: int | None, all_folds: bool
              ) -> list[tuple[int | None, ModelSource]]:
    """(fold, model) pairs to evaluate: one pair, or one per Twitter fold."""
    model_path = Path(model)
    if not all_folds:
        fold = (fold or 0) if dataset in TWITTER_DATASETS else None
        try:
            return [(fold, locate_model(model_path))]
        except FileNotFoundError:
            # A folder of per-fold models evaluated on one fold: use that fold's model.
            if fold is not None and (model_path / f"fold{fold}").is_dir():
                return [(fold, locate_model(model_path / f"fold{fold}"))]
            raise
    if (model_path / "fold0").is_dir():
        missing = [f"fold{k}" for k in range(NUM_TWITTER_FOLDS) if not (model_path / f"fold{k}").is_dir()]
        if missing:
            raise FileNotFoundError(
                f"{model_path} holds per-fold models but lacks {', '.join(missing)}; --all-folds needs "
                f"fold0 ... fold{NUM_TWITTER_FOLDS - 1}"
            )
        runs = []
        for k in range(NUM_TWITTER_FOLDS):
            source = locate_model(model_path / f"fold{k}")
            recorded = source.descriptor.get("fold")
            # A model evaluated on a fold it was trained on would report training accuracy.
            if recorded is not None and int(recorded) != k:
                raise ValueError(f"{source.path} was trained with fold {recorded} held out, not fold {k}")
            runs.append((k, source))
        return runs
    # One model (an 8-emotion model, zero-shot) on every test fold.
    source = locate_model(model_path)
    return [(k, source) for k in range(NUM_TWITTER_FOLDS)]


# ----------------------------------------------------------------------------------------------------------
# Inference and report


def run_inference(model, dataset, accelerator, batch_size: int, num_workers: int, desc: str):
    """Logits, labels and the skipped paths of ``dataset``, gathered like ``uniemo.training.stage1.predict``.

    Returns:
        logits (N, M) float on CPU, labels (N,) long on CPU, and the paths of images that were skipped as
        unreadable (the indices that never came back, so this also works with DataLoader workers). Counts are
        exact on one process; with several, gather_for_metrics trims its padding assuming full batches, which
        skipped images break.
    """
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        collate_fn=collate_records)
    # Only placed on the device: inference needs no gradient-syncing wrapper, and not registering the model with
    # accelerate lets each per-fold model be freed as soon as its fold is done. The loader is prepared, so it
    # shards across processes and moves batches to the device, as in predict.
    model = model.to(accelerator.device)
    loader = accelerator.prepare_data_loader(loader)
    model.eval()
    all_logits, all_labels, seen = [], [], []
    with torch.no_grad():
        for batch in tqdm(loader, desc=desc, disable=not accelerator.is_local_main_process):
            if batch is None:  # every image of this batch was unreadable (skip mode)
                continue
            with accelerator.autocast():
                logits = model(batch["pixel_values"]).logits.float()
            logits, labels, index = accelerator.gather_for_metrics((logits, batch["labels"], batch["index"]))
            all_logits.append(logits.cpu())
            all_labels.append(labels.cpu())
            seen.append(index.cpu())
    returned = set(torch.cat(seen).tolist()) if seen else set()
    skipped = [entry.path for i, entry in enumerate(dataset.entries) if i not in returned]
    if not all_logits:
        num_classes = len(model.config.emotions)
        return torch.zeros(0, num_classes), torch.zeros(0, dtype=torch.long), skipped
    return torch.cat(all_logits), torch.cat(all_labels), skipped


def split_report(scores, labels, class_names: Sequence[str]) -> dict[str, Any]:
    """``classification_report``, without the top-5 of 5 classes or fewer (always 1: not a measurement)."""
    report = classification_report(scores, labels, class_names)
    if len(class_names) <= 5:
        report["top5"] = None
    return report


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _versions() -> dict[str, str]:
    return {"python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "accelerate": accelerate.__version__}


def model_info(source: ModelSource) -> dict[str, Any]:
    """What identifies the checkpoint: its folders, weights hash, label list, descriptor and config."""
    config = json.loads((source.classifier_dir / "config.json").read_text())
    weights = source.classifier_dir / "model.safetensors"
    return {
        "path": str(source.path.resolve()),
        "classifier_dir": str(source.classifier_dir.resolve()),
        "weights_sha256": _sha256(weights) if weights.is_file() else None,
        "labels": list(config.get("emotions", [])),
        "trained_on": source.trained_on,
        "descriptor": source.descriptor,
        "config": config,
    }


def make_accelerator(device: str) -> Accelerator:
    """An ``Accelerator`` for ``device`` (auto, cpu or cuda); CPU when the launch asks for CPU processes."""
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but no CUDA device is available; use --device cpu or auto")
    return Accelerator(cpu=device == "cpu" or (device == "auto" and cpu_processes()))


def _fold_record(run: SplitResult) -> dict[str, Any]:
    return {
        "fold": run.fold,
        "model": str(run.source.path.resolve()),
        "protocol": run.protocol.name,
        "top1": run.report["top1"],
        "num_images": run.report["num_samples"],
        "num_listed": run.num_listed,
        "skipped_images": len(run.skipped_paths),
        "skipped_paths": run.skipped_paths,
        "metrics": run.report,
    }


# ----------------------------------------------------------------------------------------------------------


def evaluate(model: str | Path, dataset: str, data_root: str | Path, split: str = "test", fold: int | None = None,
             all_folds: bool = False, batch_size: int = 64, num_workers: int = 0, skip_unreadable: bool = False,
             accelerator: Accelerator | None = None) -> dict[str, Any]:
    """Evaluate a classifier on a dataset split (or on every Twitter fold).

    Args:
        model: a model folder holding ``classifier/``, a stage-1 run folder holding ``final/``, or a classifier
            folder (``config.json`` + ``model.safetensors``); with ``all_folds``, possibly a folder of
            ``fold0`` ... ``fold4`` models.
        dataset: a ``uniemo.data`` dataset name; ``data_root`` its folder; ``split`` the split to evaluate.
        fold: twitter1/2: the held-out test fold (default 0); ``all_folds``: every fold, and their mean.
        batch_size, num_workers: of the DataLoader.
        skip_unreadable: skip (and list) unreadable images instead of failing on the first one.
        accelerator: where to run (default ``make_accelerator("auto")``).

    Returns:
        ``top1`` (the headline number: the mean over folds with ``all_folds``), ``metrics``
        (``uniemo.metrics.classification_report``; pooled over the folds with ``all_folds``), ``folds`` (per
        fold), ``fold_summary``, the protocol, image counts, the skipped images, ``models`` (folders, weights
        hash, config), the settings, versions and a timestamp.
    """
    check_request(dataset, fold, all_folds, batch_size, num_workers)
    runs = plan_runs(model, dataset, fold, all_folds)
    accelerator = accelerator or make_accelerator("auto")
    on_error = "skip" if skip_unreadable else "raise"

    results: list[SplitResult] = []
    models: dict[Path, Any] = {}  # one load per classifier folder (the zero-shot all-folds case reuses it)
    for run_fold, source in runs:
        if source.classifier_dir not in models:
            models.clear()  # per-fold models: keep one in memory at a time
            models[source.classifier_dir] = EmoClassifier.from_pretrained(source.classifier_dir)
        classifier = models[source.classifier_dir]
        cfg = classifier.config
        transform = build_transform(cfg.image_size, False, cfg.image_mean, cfg.image_std)
        kwargs: dict[str, Any] = {}
        if run_fold is not None:
            kwargs["fold"] = run_fold
        if dataset == "folder":
            kwargs["labels"] = cfg.emotions  # a custom folder is read in the model's own label space
        data = build_dataset(dataset, data_root, split, transform, on_error, **kwargs)
        # Decide the protocol before any image is read, so an impossible pairing fails at once.
        protocol = resolve_protocol(cfg.emotions, data.labels, dataset, source.trained_on)
        desc = f"{dataset}/{split}" + (f" fold {run_fold}" if run_fold is not None else "")
        logits, labels, skipped = run_inference(classifier, data, accelerator, batch_size, num_workers, desc)
        if skipped:
            logger.warning("%d unreadable image(s) skipped in %s, e.g. %s", len(skipped), desc, skipped[0])
        if len(labels) == 0:
            raise ValueError(f"no readable images in {desc} under {data_root} ({len(skipped)} skipped)")
        scores, labels, class_names = apply_protocol(protocol, logits, labels, cfg.emotions, data.labels)
        report = split_report(scores, labels, class_names)
        results.append(SplitResult(run_fold, source, protocol, report, len(data), skipped, scores, labels))

    protocols = {run.protocol.name for run in results}
    if len(protocols) > 1:
        raise ValueError(f"the per-fold models fall under different protocols: {', '.join(sorted(protocols))}")
    first = results[0]
    class_names = first.report["labels"]
    skipped_paths = [path for run in results for path in run.skipped_paths]
    if all_folds:
        # The five test folds partition the dataset, so the pooled report covers every image once.
        metrics = split_report(torch.cat([run.scores for run in results]),
                               torch.cat([run.labels for run in results]), class_names)
        summary = fold_summary([run.report["top1"] for run in results])
        headline = summary["mean"]
    else:
        metrics, summary, headline = first.report, None, first.report["top1"]

    return {
        "task": "understanding",
        "top1": headline,
        "protocol": first.protocol.name,
        "protocol_description": first.protocol.description,
        "model": str(Path(model).resolve()),
        "dataset": dataset,
        "data_root": str(Path(data_root).resolve()),
        "split": split,
        "fold": None if all_folds else first.fold,
        "all_folds": bool(all_folds),
        "labels": list(class_names),
        "num_images": metrics["num_samples"],
        "num_listed": sum(run.num_listed for run in results),
        "skipped_images": len(skipped_paths),
        "skipped_paths": skipped_paths,
        "metrics": metrics,
        "folds": [_fold_record(run) for run in results] if all_folds else None,
        "fold_summary": summary,
        # One entry per distinct checkpoint: one, or five with per-fold models.
        "models": [model_info(source) for source in {id(run.source): run.source for run in results}.values()],
        "settings": {
            "batch_size": batch_size,
            "device": str(accelerator.device),
            "num_processes": accelerator.num_processes,
            "num_workers": num_workers,
            "skip_unreadable": bool(skip_unreadable),
            "preprocessing": "shortest-side resize + center crop to the model's image_size, normalised with "
                             "its image_mean / image_std (see models[].config)",
            "num_folds": NUM_TWITTER_FOLDS if dataset in TWITTER_DATASETS else None,
        },
        "versions": _versions(),
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
