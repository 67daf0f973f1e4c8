"""The data options shared by stage 1, the probe and stage 2 (``data.*`` keys). No torch import here."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DataConfig:
    dataset: str = "emoset"  # emoset | emoshapes | fi | emotionroi | twitter1 | twitter2 | folder
    root: str = ""  # dataset folder
    train_split: str = "train"
    val_split: str | None = "val"  # model selection in stages 1-2 (never test); train/probe.py: null skips it
    fold: int = 0  # twitter1/2: which of the 5 folds is held out
    num_classes: int = 8  # emoset/emoshapes: 8, or 2 for the sentiment collapse
    skip_unreadable: bool = False  # false: fail on the first unreadable image (with its path); true: skip, count
    num_workers: int = 4
    max_train_samples: int | None = None  # debug: a prefix of the training split
    # fewer labelled images: keep this many training images per emotion (all of an emotion that has fewer),
    # drawn without replacement by train_subset_seed (the same images for every run with that seed); null: all
    train_per_class: int | None = None
    train_subset_seed: int = 0
