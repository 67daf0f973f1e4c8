"""The plumbing every training run shares: the accelerator, run folder and trackers, loader options, the metrics
log and progress, the optimizer step, checkpoints (save, rotate, resume) and the training-curve figure.

Stage 1 (``uniemo.training.stage1.run_stage1``) and stage 2 (``uniemo.training.joint.run_joint``) write their
loops out in full; what they have in common lives here, once, in the manner of timm's ``CheckpointSaver`` and
open_clip's ``distributed.py``.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from datetime import timedelta
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import InitProcessGroupKwargs, ProjectConfiguration, set_seed
from tqdm.auto import tqdm

from uniemo.config import config_to_dict, save_config
from uniemo.data.subsets import per_class_subset
from uniemo.training.curves import CURVES_FILE, plot_training_curves
from uniemo.distributed import cpu_processes
from uniemo.training.utils import mixed_precision_setting

CHECKPOINT_PREFIX = "checkpoint-"
TRAINER_STATE = "trainer_state.json"


def trackers_of(report_to: str | None) -> list[str] | str | None:
    """``report_to`` as accelerate's ``log_with``: ``None`` for "none" (or empty), "all", or a comma-separated list
    of tracker names (tensorboard, wandb, trackio, comet_ml, aim, mlflow, clearml, dvclive)."""
    if report_to is None or report_to.strip().lower() in ("", "none"):
        return None
    names = [name.strip() for name in report_to.split(",") if name.strip()]
    return "all" if names == ["all"] else names


def flat_config(cfg) -> dict:
    """The run's config as flat ``section.key -> int | float | str | bool`` (trackers' hyperparameters accept only
    scalars: lists and ``None`` are written as text)."""
    flat: dict = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}{key}.", inner)
        else:
            key = prefix[:-1]
            flat[key] = value if isinstance(value, (int, float, str, bool)) else str(value)

    walk("", config_to_dict(cfg))
    return flat


def start_run(cfg, out_dir: str | Path, project: str) -> Accelerator:
    """The accelerator for a run of ``cfg`` (its ``mixed_precision``, ``grad_accum_steps``, ``seed``,
    ``collective_timeout`` and ``report_to``), with logging configured, every process seeded, and on the main
    process ``out_dir`` made, ``config.yaml`` written (the resolved config) and the trackers started
    (TensorBoard by default: event files under ``out_dir/logs/<project>/``; ``report_to=none`` for none).

    The scheduler is stepped once per optimizer step by the loops themselves (``step_scheduler_with_optimizer``
    off), so the schedule is the same whatever the number of processes.
    """
    out_dir = Path(out_dir)
    log_with = trackers_of(cfg.report_to)
    timeout = InitProcessGroupKwargs(timeout=timedelta(seconds=cfg.collective_timeout))
    accelerator = Accelerator(cpu=cpu_processes(), mixed_precision=mixed_precision_setting(cfg.mixed_precision),
                              gradient_accumulation_steps=cfg.grad_accum_steps, step_scheduler_with_optimizer=False,
                              log_with=log_with, kwargs_handlers=[timeout],
                              project_config=ProjectConfiguration(project_dir=str(out_dir),
                                                                  logging_dir=str(out_dir / "logs")))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("accelerate").setLevel(logging.WARNING)
    set_seed(cfg.seed)
    if accelerator.is_main_process:
        out_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out_dir / "config.yaml")
    if log_with is not None:
        accelerator.init_trackers(project, config=flat_config(cfg))
    return accelerator


def loader_options(num_workers: int) -> dict:
    """``DataLoader`` keywords for a training or evaluation loader: pinned memory when batches go to a GPU, and
    workers kept alive between epochs (no re-forking, no re-opening of the dataset each epoch)."""
    return {"num_workers": num_workers, "pin_memory": torch.cuda.is_available(),
            "persistent_workers": num_workers > 0}


def finish_run(accelerator: Accelerator, out_dir: str | Path, title: str) -> None:
    """End of a run: the training-curve PNG (``training_curves.png``, from ``metrics.jsonl``) on the main
    process, and the trackers closed."""
    out_dir = Path(out_dir)
    if accelerator.is_main_process and (out_dir / "metrics.jsonl").is_file():
        plot_training_curves(out_dir / "metrics.jsonl", out_dir / CURVES_FILE, title)
    accelerator.end_training()


def restrict_training_set(train_set, data) -> None:
    """Apply a ``DataConfig``'s training-set limits to ``train_set`` in place: ``train_per_class`` images per
    emotion (``per_class_subset``, seeded by ``train_subset_seed``), then the ``max_train_samples`` prefix."""
    if data.train_per_class is not None:
        train_set.entries = per_class_subset(train_set.entries, data.train_per_class, data.train_subset_seed)
    if data.max_train_samples:
        train_set.entries = train_set.entries[:data.max_train_samples]


def dataset_options(data) -> dict:
    """The dataset-specific keyword arguments of ``build_dataset`` for a ``DataConfig``: the fold of the
    Twitter sets, the label space (8 emotions or 2 polarities) of EmoSet and EmoShapes."""
    name = data.dataset.lower()
    options: dict = {"fold": data.fold} if name.startswith("twitter") else {}
    if name in ("emoset", "emoshapes"):
        options["num_classes"] = data.num_classes
    return options


class MetricsLog:
    """``metrics.jsonl``: one JSON record per line, written by the main process only; the numbers of each step
    record also go to the run's trackers."""

    def __init__(self, accelerator: Accelerator, path: str | Path):
        self.accelerator, self.path = accelerator, Path(path)

    def __call__(self, record: dict) -> None:
        if self.accelerator.is_main_process:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")
        # the trackers (when any) get the numbers of a step record; every process calls, accelerate keeps the main
        scalars = {k: v for k, v in record.items()
                   if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)}
        if scalars and "step" in record and self.accelerator.trackers:
            self.accelerator.log(scalars, step=int(record["step"]))


class TrainingProgress:
    """The progress bar and the training records of a loop: after each optimizer step ``step_done`` advances the
    bar and adds the loss terms; every ``log_every`` steps (and at the last) one record with their means, the
    learning rate, the skipped images and the elapsed time goes to the metrics log."""

    def __init__(self, accelerator: Accelerator, log: MetricsLog, total_steps: int, initial_step: int, desc: str,
                 log_every: int):
        self.log, self.total_steps, self.log_every = log, total_steps, log_every
        self.bar = tqdm(total=total_steps, initial=initial_step, desc=desc,
                        disable=not accelerator.is_local_main_process)
        self.sums: dict[str, float] = {}
        self.count, self.skipped, self.t0 = 0, 0, time.time()

    def step_done(self, step: int, epoch: int, loss, terms: dict, lr: float) -> None:
        for key, value in {**terms, "total": loss}.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value)
        self.count += 1
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{float(loss):.4f}")
        if step % self.log_every == 0 or step == self.total_steps:
            self.log({"step": step, "epoch": epoch, "lr": lr,
                      **{f"train/loss_{k}": v / self.count for k, v in self.sums.items()},
                      "skipped_images": self.skipped, "seconds": round(time.time() - self.t0, 2)})
            self.sums, self.count = {}, 0

    def close(self) -> None:
        self.bar.close()


def sample_generators(seed: int, first: int, count: int) -> list[torch.Generator]:
    """One CPU generator per sample of a micro-batch, seeded by the sample's number in the whole run (``first``:
    micro-steps done × global batch + this process's offset in the global batch). A sample draws the same random
    numbers (object pick, noise, timestep) whether one process or several share the batch."""
    return [torch.Generator().manual_seed((seed * 1_000_003 + n) % 2**63) for n in range(first, first + count)]


def backward_and_step(accelerator: Accelerator, loss, optimizer, scheduler, grad_clip: float) -> None:
    """One micro-batch's backward, then (inside ``accelerator.accumulate``) the optimizer step: gradients clipped
    to ``grad_clip`` (0: not clipped) and the schedule advanced only when the gradients are synchronised, i.e.
    once per optimizer step whatever the number of processes and accumulation steps."""
    accelerator.backward(loss)
    if accelerator.sync_gradients and grad_clip > 0:
        accelerator.clip_grad_norm_([p for group in optimizer.param_groups for p in group["params"]], grad_clip)
    optimizer.step()
    if accelerator.sync_gradients:
        scheduler.step()
    optimizer.zero_grad(set_to_none=True)


def latest_checkpoint(ckpt_dir: str | Path) -> Path | None:
    """The checkpoint folder with the highest step under ``ckpt_dir``, or ``None``."""
    found = sorted(Path(ckpt_dir).glob(f"{CHECKPOINT_PREFIX}*"), key=lambda p: int(p.name.split("-")[1]))
    return found[-1] if found else None


class CheckpointSaver:
    """``<ckpt_dir>/checkpoint-<step>/``: accelerate's state (models, optimizer, scheduler, random states) plus a
    ``trainer_state.json`` and any other JSON files the loop adds; only the newest ``total_limit`` are kept."""

    def __init__(self, accelerator: Accelerator, ckpt_dir: str | Path, total_limit: int):
        self.accelerator, self.dir, self.total_limit = accelerator, Path(ckpt_dir), total_limit

    def save(self, step: int, state: dict, files: dict[str, dict] | None = None) -> Path:
        """Save at ``step``; ``state`` goes to ``trainer_state.json`` (with the step), ``files`` to
        ``<name>`` each. Every process must call it (saving is collective)."""
        self.accelerator.wait_for_everyone()
        path = self.dir / f"{CHECKPOINT_PREFIX}{step}"
        self.accelerator.save_state(str(path))
        if self.accelerator.is_main_process:
            (path / TRAINER_STATE).write_text(json.dumps({"step": step, **state}))
            for name, content in (files or {}).items():
                (path / name).write_text(json.dumps(content) + "\n")
            old = sorted(self.dir.glob(f"{CHECKPOINT_PREFIX}*"), key=lambda p: int(p.name.split("-")[1]))
            for stale in old[:-self.total_limit] if self.total_limit > 0 else []:
                shutil.rmtree(stale, ignore_errors=True)
        return path

    def resume(self, spec: str) -> tuple[Path, dict]:
        """Load the checkpoint ``spec`` names (a folder, or ``"latest"``) into the prepared objects.

        Returns:
            (its folder, its ``trainer_state.json``)
        Raises:
            FileNotFoundError: when there is no such checkpoint.
        """
        path = latest_checkpoint(self.dir) if spec == "latest" else Path(spec)
        if path is None or not path.is_dir():
            raise FileNotFoundError(f"no checkpoint to resume from at {spec!r} (looked in {self.dir})")
        self.accelerator.load_state(str(path))
        state = json.loads((path / TRAINER_STATE).read_text())
        self.accelerator.print(f"resumed from {path} at step {state['step']}")
        return path, state
