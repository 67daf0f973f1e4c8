"""Emotion-understanding accuracy of a trained classifier on a test split (uniemo.understanding_eval).

Top-1 (and top-5, per-class accuracy, confusion matrix) under one of three protocols, chosen from the model's
label list (its saved config) and the dataset's, always matched by name and never by index:

    same-label-space  the model's labels and the dataset's are the same names, in any order (an EmoSet model on
                      EmoSet, a Twitter model on Twitter); scores are reordered into the dataset's label order.
    zero-shot         the same, for a model whose ``uniemo.json`` says it was trained on another dataset (an
                      EmoSet model on FI).
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
number: the mean over folds with ``--all-folds``), ``metrics`` (``uniemo.metrics.classification_report``; pooled
over the folds with ``--all-folds``), ``folds`` (per fold), ``fold_summary``, the protocol, image counts, the
skipped images, ``models`` (folders, weights hash, config), the settings, versions and a timestamp; and a
row-normalised confusion-matrix PNG next to it (``--plot`` to choose the file, ``--no-plot`` to skip it).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

# Kept in step with uniemo.data.DATASET_NAMES (a test checks it); importing that package here would load torch.
DATASETS: tuple[str, ...] = ("emoset", "emoshapes", "fi", "emotionroi", "twitter1", "twitter2", "folder")


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
                        help="twitter1/2: the held-out test fold, 0-4 (default 0)")
    parser.add_argument("--all-folds", action="store_true",
                        help="twitter1/2: evaluate all folds and report the mean (per-fold models in MODEL/foldK)")
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes")
    return parser


def _default_out(args: argparse.Namespace, fold: int | None) -> Path:
    if args.all_folds:
        suffix = "_folds"
    elif fold is not None:
        suffix = f"_fold{fold}"
    else:
        suffix = ""
    return Path(args.model) / f"eval_{args.dataset}_{args.split}{suffix}.json"


# ----------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict:
    """Evaluate a classifier on a dataset split. Returns the result dict (also written as JSON)."""
    args = build_parser().parse_args(argv)

    from uniemo.figures import plot_confusion_matrix
    from uniemo.understanding_eval import check_request, evaluate, make_accelerator

    check_request(args.dataset, args.fold, args.all_folds, args.batch_size, args.num_workers)
    logging.getLogger("accelerate").setLevel(logging.WARNING)
    accelerator = make_accelerator(args.device)
    result = evaluate(args.model, args.dataset, args.data_root, args.split, args.fold, args.all_folds,
                      args.batch_size, args.num_workers, args.skip_unreadable, accelerator)

    out_path = Path(args.out) if args.out else _default_out(args, result["fold"])
    plot_path = None if args.no_plot else (Path(args.plot) if args.plot else out_path.with_suffix(".png"))
    result["outputs"] = {"json": str(out_path.resolve()), "plot": str(plot_path.resolve()) if plot_path else None}
    if accelerator.is_main_process:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(result, indent=2) + "\n")
        if plot_path is not None:
            where = f"{args.dataset}/{args.split}" + (", pooled over 5 folds" if args.all_folds else "")
            plot_confusion_matrix(result["metrics"]["confusion_matrix"], result["labels"], plot_path,
                                  f"{where} ({result['protocol']}): top-1 {result['top1']:.2%}")
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
