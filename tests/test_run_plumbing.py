"""The training runs' shared plumbing: trackers and the training-curve figure, the sampler and seeded augmentation
(also inside persistent loader workers), checkpoint rotation."""

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from uniemo.data.sampler import EpochSampler, SeededAugmentation
from uniemo.training.curves import CURVES_FILE, plot_training_curves, read_series
from uniemo.training.run import flat_config, trackers_of
from uniemo.training.stage1_config import UnderstandingConfig


def test_report_to_names_the_trackers():
    assert trackers_of(None) is None and trackers_of("none") is None and trackers_of(" None ") is None
    assert trackers_of("tensorboard") == ["tensorboard"]
    assert trackers_of("tensorboard, wandb") == ["tensorboard", "wandb"]
    assert trackers_of("all") == "all"


def test_tracker_hyperparameters_are_flat_scalars():
    flat = flat_config(UnderstandingConfig())
    assert flat["optim.lr_backbone"] == 8e-6 and flat["model.clip"] == "openai/clip-vit-base-patch32"
    assert flat["optim.betas"] == "[0.9, 0.999]" and flat["max_steps"] == "None"  # lists and None as text
    assert all(isinstance(v, (int, float, str, bool)) for v in flat.values())


def test_curves_read_the_step_records_and_draw_a_png(tmp_path):
    log = tmp_path / "metrics.jsonl"
    records = [{"step": 10, "epoch": 0, "lr": 1e-3, "train/loss_total": 2.0, "train/loss_emotion": 1.5,
                "skipped_images": 0},
               {"step": 10, "val/top1": 0.25},
               {"step": 20, "epoch": 0, "lr": 5e-4, "train/loss_total": 1.0, "train/loss_emotion": 0.5},
               {"step": 20, "val/top1": 0.5},
               {"step": 20, "final": {"best_val_top1": 0.5}}]
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    series = read_series(log)
    assert series["train/loss_total"] == ([10, 20], [2.0, 1.0])
    assert series["val/top1"] == ([10, 20], [0.25, 0.5]) and series["lr"] == ([10, 20], [1e-3, 5e-4])
    assert "skipped_images" not in series and "epoch" not in series and "final" not in series
    out = plot_training_curves(log, tmp_path / CURVES_FILE, "stage 1")
    with Image.open(out) as image:
        assert image.format == "PNG" and image.width > 1000  # three panels


def test_no_step_record_no_figure(tmp_path):
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"final": {}}) + "\n")
    assert plot_training_curves(tmp_path / "metrics.jsonl", tmp_path / "c.png") is None
    assert not (tmp_path / "c.png").exists()


def test_stage1_run_writes_tensorboard_events_and_the_curves(tmp_path, learnable_emoset):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from train.understanding import main

    out = tmp_path / "run"
    main(["--preset", "tiny", f"data.root={learnable_emoset}", f"out_dir={out}", "max_steps=4", "eval_every=2",
          "log_every=2"])
    events = sorted((out / "logs").rglob("events.out.tfevents.*"))
    assert events, list(out.rglob("*"))
    scalars = set()
    for event_file in events:
        accumulator = EventAccumulator(str(event_file))
        accumulator.Reload()
        scalars |= set(accumulator.Tags()["scalars"])
    assert {"train/loss_total", "val/top1", "lr"} <= scalars
    with Image.open(out / CURVES_FILE) as image:
        assert image.format == "PNG"


def test_stage2_run_writes_tensorboard_events_and_the_curves(tiny_model_dir):
    run = tiny_model_dir.parent
    assert sorted((run / "logs" / "uniemo-stage2").glob("events.out.tfevents.*"))
    with Image.open(run / CURVES_FILE) as image:
        assert image.format == "PNG"


def test_report_to_none_writes_no_events(tmp_path, learnable_emoset):
    from train.understanding import main

    out = tmp_path / "run"
    main(["--preset", "tiny", f"data.root={learnable_emoset}", f"out_dir={out}", "max_steps=2", "report_to=none"])
    assert not (out / "logs").exists() and (out / CURVES_FILE).is_file()


# ---------------------------------------------------------------------------------------------------------- sampler


def test_processes_see_slices_of_the_single_process_batches():
    single = list(EpochSampler(40, 8, seed=3))
    ranks = [list(EpochSampler(40, 8, seed=3, rank=r, world_size=2)) for r in range(2)]
    for b in range(5):
        whole = single[8 * b:8 * b + 8]
        assert ranks[0][4 * b:4 * b + 4] + ranks[1][4 * b:4 * b + 4] == whole
    assert {epoch for epoch, _ in single} == {0}
    assert sorted(i for _, i in single) == list(range(40))


def test_resuming_mid_epoch_skips_the_batches_done():
    sampler = EpochSampler(40, 8, seed=1)
    sampler.set_epoch(2)
    full = list(sampler)
    sampler.set_epoch(2, start_batch=3)
    assert list(sampler) == full[24:] and all(epoch == 2 for epoch, _ in full)


class _Noise(Dataset):
    """Item i: a random number drawn from the global RNG (what a random augmentation does)."""

    def __len__(self):
        return 16

    def __getitem__(self, index):
        return {"index": index, "value": torch.rand(()).item()}


def _epochs(num_workers: int, persistent: bool) -> list[list[tuple[int, float]]]:
    data = SeededAugmentation(_Noise(), seed=5)
    sampler = EpochSampler(len(data), 4, seed=5)
    loader = DataLoader(data, batch_size=4, sampler=sampler, num_workers=num_workers,
                        persistent_workers=persistent)
    seen = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        data.epoch = epoch  # a persistent worker never sees this: the epoch must travel with the index
        seen.append([(int(i), round(float(v), 6)) for batch in loader
                     for i, v in zip(batch["index"], batch["value"])])
    return seen


def test_augmentation_is_the_same_in_persistent_workers():
    """Seeded by (seed, epoch, index) whether the items are made in the main process or in two workers kept alive
    across epochs, and different from one epoch to the next."""
    reference = _epochs(0, False)
    assert _epochs(2, True) == reference
    assert reference[0] != reference[1]
    assert dict(reference[0]) != dict(reference[1])  # the same index is augmented anew each epoch
