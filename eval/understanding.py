"""Emotion-understanding accuracy of a trained classifier on a test split (METHOD.md sections 1, 2 and 8).

Top-1 (and top-5, per-class accuracy, confusion matrix) under one of three protocols, chosen from the model's
label list (its saved config) and the dataset's, always matched by name and never by index:

    same-label-space  the model's labels and the dataset's are the same names, in any order (an EmoSet model on
                      EmoSet, a Twitter model on Twitter); scores are reordered into the dataset's label order.
    zero-shot         the same, for a model whose ``uniemo.json`` says it was trained on another dataset (an
                      EmoSet model on FI, METHOD.md section 8).
    binary-collapse   an 8-emotion model on a binary dataset (Twitter I/II): the softmax probabilities of
                      amusement, awe, contentment and excitement sum to p(positive), the rest to p(negative);
                      or a binary model on an 8-emotion dataset, whose labels collapse the same way.

Any other pairing (an 8-emotion model on EmotionROI's 6 classes) is a ``ValueError`` naming the protocols.
Twitter is 5-fold cross-validation: ``--fold K`` evaluates held-out fold K; ``--all-folds`` evaluates all five
and reports per-fold and mean accuracy, either with one model per fold (``MODEL/fold0`` ... ``MODEL/fold4``,
each on its own held-out fold) or with one model on every fold (zero-shot).

Usage:
    python eval/understanding.py --model runs/understanding/final --dataset emoset --data-root /data/EmoSet-118K
    python eval/understanding.py --model runs/understanding/final --dataset fi --data-root /data/FI
    python eval/understanding.py --model runs/understanding/final --dataset twitter1 --data-root /data/twitter1 \\
        --all-folds
    python eval/understanding.py --model runs/twitter1 --dataset twitter1 --data-root /data/twitter1 --all-folds

``--model`` is a model folder holding ``classifier/`` (a stage-1 ``final/`` or a full UniEmo model), a stage-1
run folder holding ``final/``, or a classifier folder itself (``config.json`` + ``model.safetensors``).

Writes one JSON (default ``MODEL/eval_<dataset>_<split>[_fold<K>|_folds].json``) with ``top1`` (the headline
number: the mean over folds with ``--all-folds``), ``metrics`` (``eval.metrics.classification_report``; pooled
over the folds with ``--all-folds``), ``folds`` (per fold), ``fold_summary``, the protocol, image counts, the
skipped images, ``models`` (folders, weights hash, config), the settings, versions and a timestamp; and a
row-normalised confusion-matrix PNG next to it (``--plot`` to choose the file, ``--no-plot`` to skip it).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import platform  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from typing import TYPE_CHECKING, Any, Sequence  # noqa: E402

if TYPE_CHECKING:  # torch is imported inside main so that --help stays fast
    import torch

logger = logging.getLogger("uniemo.eval.understanding")

# Kept in step with uniemo.data.DATASET_NAMES (a test checks it); importing that package here would load torch.
DATASETS: tuple[str, ...] = ("emoset", "emoshapes", "fi", "emotionroi", "twitter1", "twitter2", "folder")
TWITTER_DATASETS: tuple[str, ...] = ("twitter1", "twitter2")
NUM_TWITTER_FOLDS = 5  # the Twitter I/II protocol (METHOD.md section 2)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eval/understanding.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True,
                        help="model folder, stage-1 run or final/ folder, or classifier folder")
    parser.add_argument("--dataset", required=True, choices=DATASETS)
    parser.add_argument("--data-root", required=True, help="the dataset folder")
    parser.add_argument("--split", default="test", help="split to evaluate (default: test)")
    parser.add_argument("--out", default=None, help="result JSON (default: MODEL/eval_<dataset>_<split>.json)")
    parser.add_argument("--plot", default=None, help="confusion-matrix PNG (default: next to the JSON)")
    parser.add_argument("--no-plot", action="store_true", help="do not write the confusion-matrix PNG")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--skip-unreadable", action="store_true",
                        help="skip (and list) unreadable images instead of failing on the first one")
    parser.add_argument("--fold", type=int, default=None,
                        help=f"twitter1/2: the held-out test fold, 0-{NUM_TWITTER_FOLDS - 1} (default 0)")
    parser.add_argument("--all-folds", action="store_true",
                        help="twitter1/2: evaluate all folds and report the mean (per-fold models in MODEL/foldK)")
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes")
    return parser


def _check_args(args: argparse.Namespace) -> None:
    """Flag combinations that cannot work, caught before anything heavy is imported."""
    twitter = args.dataset in TWITTER_DATASETS
    if args.fold is not None and not twitter:
        raise ValueError(f"--fold applies to {' and '.join(TWITTER_DATASETS)} only, not {args.dataset}")
    if args.all_folds and not twitter:
        raise ValueError(f"--all-folds applies to {' and '.join(TWITTER_DATASETS)} only, not {args.dataset}")
    if args.all_folds and args.fold is not None:
        raise ValueError("pass either --fold K (one fold) or --all-folds (every fold), not both")
    if args.fold is not None and not 0 <= args.fold < NUM_TWITTER_FOLDS:
        raise ValueError(f"--fold must be in [0, {NUM_TWITTER_FOLDS}), got {args.fold}")
    if args.batch_size < 1 or args.num_workers < 0:
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
        dataset: the dataset's name (``--dataset``).
        trained_on: the dataset the model was trained on, from its ``uniemo.json`` (``None`` when unknown).

    Returns:
        The ``Protocol``.

    Raises:
        ValueError: when the label spaces neither match by name nor collapse to binary sentiment.
    """
    from uniemo.constants import EMOTIONS, POSITIVE_EMOTIONS, SENTIMENTS

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
    import torch

    from eval.metrics import align_logits, collapse_to_binary
    from uniemo.constants import EMOTIONS, POSITIVE_EMOTIONS, SENTIMENTS, emotion_to_sentiment

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


# ----------------------------------------------------------------------------------------------------------
# Inference, report, plot


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


def run_inference(model, dataset, accelerator, batch_size: int, num_workers: int, desc: str):
    """Logits, labels and the skipped paths of ``dataset``, gathered like ``train.understanding.predict``.

    Returns:
        logits (N, M) float on CPU, labels (N,) long on CPU, and the paths of images that were skipped as
        unreadable (the indices that never came back, so this also works with DataLoader workers). Counts are
        exact on one process; with several, gather_for_metrics trims its padding assuming full batches, which
        skipped images break.
    """
    import torch
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from uniemo.data import collate_records

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


def _report(scores, labels, class_names: Sequence[str]) -> dict[str, Any]:
    from eval.metrics import classification_report

    report = classification_report(scores, labels, class_names)
    if len(class_names) <= 5:
        report["top5"] = None  # with 5 classes or fewer top-5 is always 1: not a measurement
    return report


def plot_confusion_matrix(
    cm: Sequence[Sequence[int]], labels: Sequence[str], path: str | Path, title: str
) -> Path:
    """Row-normalised confusion matrix as a PNG: colour = fraction of the true class, text = counts.

    Args:
        cm: (C, C) counts, row = true class, column = predicted class.
        labels: the C class names.
        path: the PNG to write (parent folders are created).
        title: the figure title.

    Returns:
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only; never open a window
    import matplotlib.pyplot as plt
    import torch

    from eval.metrics import normalize_confusion

    counts = torch.as_tensor(cm, dtype=torch.long)
    fractions = normalize_confusion(counts)
    C = len(labels)
    side = max(3.5, 0.55 * C + 2.0)
    fig, ax = plt.subplots(figsize=(side + 1.0, side))
    image = ax.imshow(fractions.numpy(), cmap=matplotlib.colormaps["Blues"], vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    ax.set_xticks(range(C), labels=list(labels), rotation=45, ha="right")
    ax.set_yticks(range(C), labels=list(labels))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(C):
        for j in range(C):
            # white text on dark cells so the count stays readable
            colour = "white" if fractions[i, j] > 0.5 else "black"
            ax.text(j, i, str(int(counts[i, j])), ha="center", va="center", color=colour, fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _versions() -> dict[str, str]:
    import accelerate
    import torch
    import torchvision

    return {"python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "accelerate": accelerate.__version__}


def _model_info(source: ModelSource) -> dict[str, Any]:
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


def _make_accelerator(device: str):
    import torch
    from accelerate import Accelerator

    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but no CUDA device is available; use --device cpu or auto")
    from uniemo.training.utils import cpu_processes

    return Accelerator(cpu=device == "cpu" or (device == "auto" and cpu_processes()))


def _plan_runs(args: argparse.Namespace) -> list[tuple[int | None, ModelSource]]:
    """(fold, model) pairs to evaluate: one pair, or one per Twitter fold."""
    model_path = Path(args.model)
    if not args.all_folds:
        fold = (args.fold or 0) if args.dataset in TWITTER_DATASETS else None
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


def _default_out(args: argparse.Namespace, fold: int | None) -> Path:
    if args.all_folds:
        suffix = "_folds"
    elif fold is not None:
        suffix = f"_fold{fold}"
    else:
        suffix = ""
    return Path(args.model) / f"eval_{args.dataset}_{args.split}{suffix}.json"


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


def main(argv: list[str] | None = None) -> dict:
    """Evaluate a classifier on a dataset split. Returns the result dict (also written as JSON)."""
    args = build_parser().parse_args(argv)
    _check_args(args)

    import torch

    from eval.metrics import fold_summary
    from uniemo.classifier import EmoClassifier
    from uniemo.data import build_dataset, build_transform

    logging.getLogger("accelerate").setLevel(logging.WARNING)
    runs = _plan_runs(args)
    accelerator = _make_accelerator(args.device)
    on_error = "skip" if args.skip_unreadable else "raise"

    results: list[SplitResult] = []
    models: dict[Path, Any] = {}  # one load per classifier folder (the zero-shot all-folds case reuses it)
    for fold, source in runs:
        if source.classifier_dir not in models:
            models.clear()  # per-fold models: keep one in memory at a time
            models[source.classifier_dir] = EmoClassifier.from_pretrained(source.classifier_dir)
        model = models[source.classifier_dir]
        cfg = model.config
        transform = build_transform(cfg.image_size, False, cfg.image_mean, cfg.image_std)
        kwargs: dict[str, Any] = {}
        if fold is not None:
            kwargs["fold"] = fold
        if args.dataset == "folder":
            kwargs["labels"] = cfg.emotions  # a custom folder is read in the model's own label space
        dataset = build_dataset(args.dataset, args.data_root, args.split, transform, on_error, **kwargs)
        # Decide the protocol before any image is read, so an impossible pairing fails at once.
        protocol = resolve_protocol(cfg.emotions, dataset.labels, args.dataset, source.trained_on)
        desc = f"{args.dataset}/{args.split}" + (f" fold {fold}" if fold is not None else "")
        logits, labels, skipped = run_inference(model, dataset, accelerator, args.batch_size, args.num_workers,
                                                desc)
        if skipped:
            logger.warning("%d unreadable image(s) skipped in %s, e.g. %s", len(skipped), desc, skipped[0])
        if len(labels) == 0:
            raise ValueError(f"no readable images in {desc} under {args.data_root} ({len(skipped)} skipped)")
        scores, labels, class_names = apply_protocol(protocol, logits, labels, cfg.emotions, dataset.labels)
        results.append(SplitResult(fold, source, protocol, _report(scores, labels, class_names), len(dataset),
                                   skipped, scores, labels))

    protocols = {run.protocol.name for run in results}
    if len(protocols) > 1:
        raise ValueError(f"the per-fold models fall under different protocols: {', '.join(sorted(protocols))}")
    first = results[0]
    class_names = first.report["labels"]
    skipped_paths = [path for run in results for path in run.skipped_paths]
    if args.all_folds:
        # The five test folds partition the dataset, so the pooled report covers every image once.
        metrics = _report(torch.cat([run.scores for run in results]), torch.cat([run.labels for run in results]),
                          class_names)
        summary = fold_summary([run.report["top1"] for run in results])
        headline = summary["mean"]
    else:
        metrics, summary, headline = first.report, None, first.report["top1"]

    out_path = Path(args.out) if args.out else _default_out(args, first.fold)
    plot_path = None if args.no_plot else (Path(args.plot) if args.plot else out_path.with_suffix(".png"))
    result: dict[str, Any] = {
        "task": "understanding",
        "top1": headline,
        "protocol": first.protocol.name,
        "protocol_description": first.protocol.description,
        "model": str(Path(args.model).resolve()),
        "dataset": args.dataset,
        "data_root": str(Path(args.data_root).resolve()),
        "split": args.split,
        "fold": None if args.all_folds else first.fold,
        "all_folds": bool(args.all_folds),
        "labels": list(class_names),
        "num_images": metrics["num_samples"],
        "num_listed": sum(run.num_listed for run in results),
        "skipped_images": len(skipped_paths),
        "skipped_paths": skipped_paths,
        "metrics": metrics,
        "folds": [_fold_record(run) for run in results] if args.all_folds else None,
        "fold_summary": summary,
        # One entry per distinct checkpoint: one, or five with per-fold models.
        "models": [_model_info(source) for source in {id(run.source): run.source for run in results}.values()],
        "settings": {
            "batch_size": args.batch_size,
            "device": str(accelerator.device),
            "num_processes": accelerator.num_processes,
            "num_workers": args.num_workers,
            "skip_unreadable": bool(args.skip_unreadable),
            "preprocessing": "shortest-side resize + center crop to the model's image_size, normalised with "
                             "its image_mean / image_std (see models[].config)",
            "num_folds": NUM_TWITTER_FOLDS if args.dataset in TWITTER_DATASETS else None,
        },
        "versions": _versions(),
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "outputs": {"json": str(out_path.resolve()), "plot": str(plot_path.resolve()) if plot_path else None},
    }

    if accelerator.is_main_process:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(result, indent=2) + "\n")
        if plot_path is not None:
            where = f"{args.dataset}/{args.split}" + (", pooled over 5 folds" if args.all_folds else "")
            plot_confusion_matrix(metrics["confusion_matrix"], class_names, plot_path,
                                  f"{where} ({first.protocol.name}): top-1 {headline:.2%}")
        print(_summary_line(result))
    accelerator.end_training()
    return result


def _summary_line(result: dict[str, Any]) -> str:
    where = f"{result['dataset']}/{result['split']}"
    if result["all_folds"]:
        folds = ", ".join(f"{fold['top1']:.2%}" for fold in result["folds"])
        score = f"mean top-1 {result['top1']:.2%} ± {result['fold_summary']['std']:.2%} over folds ({folds})"
    else:
        where += f" fold {result['fold']}" if result["fold"] is not None else ""
        top5 = result["metrics"]["top5"]
        score = f"top-1 {result['top1']:.2%}" + (f", top-5 {top5:.2%}" if top5 is not None else "")
        score += f", mean class accuracy {result['metrics']['mean_class_accuracy']:.2%}"
    return (f"{where} [{result['protocol']}]: {score}; {result['num_images']} images, "
            f"{result['skipped_images']} skipped -> {result['outputs']['json']}")


if __name__ == "__main__":
    main()
