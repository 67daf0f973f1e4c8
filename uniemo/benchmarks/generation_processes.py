"""Throughput of ``eval/generate.py`` on 1 and 2 processes: the same generation plan, run as separate commands.

A multi-process launch cannot be an in-process call, so every contender is a subprocess started with the
running interpreter and the offline environment, writing into a fresh ``--out`` folder:

    one_process_2_threads    python eval/generate.py ...                       OMP_NUM_THREADS=2 (the baseline:
                             one process using both cores of a 2-core machine)
    one_process_1_thread     python eval/generate.py ...                       OMP_NUM_THREADS=1 (for context)
    two_processes_1_thread   python -m torch.distributed.run --standalone --nproc_per_node 2 eval/generate.py ...
                             OMP_NUM_THREADS=1 (the processes share the pipeline calls: uniemo.distributed)

Two times per run: the wall time of the command (interpreter start-up, imports, process group, model load and
generation) and the generation seconds the run records in its ``generation.json`` (from the start of
``generate_folder`` on the main process to its records written; under 2 processes this includes waiting for
the other process to finish loading). Images per second = images of the plan / median seconds; speed-ups are
medians of per-round ratios (``uniemo.benchmarks.timing``). Every round also checks the images: the two
processes must write, pixel for pixel, what one process with the same thread count writes; a process with 2
intra-op threads may round some pixels differently (its matmuls split the sums differently), which is recorded
as the largest pixel difference, not checked.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

import uniemo
from uniemo.benchmarks.settings import BenchmarkSettings
from uniemo.benchmarks.timing import interleaved, paired_ratio, summary

BASELINE = "one_process_2_threads"  # one process using both cores of a 2-core machine
REFERENCE = "one_process_1_thread"  # the thread count of the sharded processes: their images must match its
SHARDED = "two_processes_1_thread"
# name -> (processes, torch threads per process)
CONTENDERS: dict[str, tuple[int, int]] = {BASELINE: (1, 2), REFERENCE: (1, 1), SHARDED: (2, 1)}
LAUNCHER = ("-m", "torch.distributed.run", "--standalone")  # --standalone: a free local port of its own
# variables of an enclosing launch that would make a child believe it is one of several processes
LAUNCH_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                    "GROUP_RANK", "ROLE_RANK", "TORCHELASTIC_RUN_ID", "ACCELERATE_USE_CPU")


def child_environment(threads: int) -> dict[str, str]:
    """This process's environment, offline, with ``threads`` intra-op threads and this checkout's ``uniemo``
    first on the import path (no variables of an enclosing multi-process launch)."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARIABLES}
    root = str(Path(uniemo.__file__).resolve().parents[1])
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               PYTHONPATH=os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p))
    return env


def shown(script: Path) -> str:
    """``script`` as the report names it: its folder and name (eval/generate.py)."""
    return f"{script.parent.name}/{script.name}"


def command(script: Path, processes: int, args: list[str]) -> list[str]:
    """The command line of one contender (the running interpreter; torchrun for several processes)."""
    if processes == 1:
        return [sys.executable, str(script), *args]
    return [sys.executable, *LAUNCHER, "--nproc_per_node", str(processes), str(script), *args]


def read_images(folder: Path) -> dict[str, np.ndarray]:
    """Every PNG under ``folder`` (hidden partial files left out), by path relative to it."""
    return {p.relative_to(folder).as_posix(): np.asarray(Image.open(p).convert("RGB"), dtype=np.int16)
            for p in sorted(folder.rglob("*.png")) if not p.name.startswith(".")}


def max_pixel_difference(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> int | None:
    """The largest difference of one pixel channel between two image sets (``None``: not the same files)."""
    if a.keys() != b.keys() or any(a[k].shape != b[k].shape for k in a):
        return None
    return max((int(np.abs(a[k] - b[k]).max()) for k in a), default=0)


def run_once(cmd: list[str], env: dict[str, str], out: Path, timeout: float) -> dict[str, Any]:
    """Run one contender into ``out``; what its ``generation.json`` records (``RuntimeError`` on failure)."""
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        tail = "\n".join(line for line in (result.stdout + result.stderr).splitlines() if "it/s]" not in line)
        raise RuntimeError(f"{' '.join(cmd)} exited with {result.returncode}:\n{tail[-4000:]}")
    return json.loads((out / "generation.json").read_text())


def bench_generation_processes(settings: BenchmarkSettings, model: Path, script: Path,
                               work_dir: Path) -> dict[str, Any]:
    """Images per second of ``script`` (eval/generate.py) on ``model`` for each of ``CONTENDERS``.

    Args:
        settings: the plan (``processes_emotions``: the model's first N emotions, None: all;
            ``processes_per_emotion``, ``processes_steps``, ``processes_batch_size``) and the repeats
            (``processes_rounds``, ``processes_warmup``: untimed runs of every contender first).
        model: a UniEmo model folder (the bundled UniEmo-Tiny).
        script: eval/generate.py.
        work_dir: a scratch folder for the runs' ``--out`` folders.
    """
    if not (model / "uniemo.json").is_file():
        raise FileNotFoundError(f"{model} is not a UniEmo model folder (no uniemo.json)")
    emotions = json.loads((model / "uniemo.json").read_text())["emotions"][:settings.processes_emotions]
    plan_args = ["--model", str(model), "--per-emotion", str(settings.processes_per_emotion),
                 "--steps", str(settings.processes_steps), "--batch-size", str(settings.processes_batch_size),
                 "--emotions", ",".join(emotions), "--seed", "0", "--device", "cpu"]
    images = len(emotions) * settings.processes_per_emotion
    calls_per_emotion = -(-settings.processes_per_emotion // settings.processes_batch_size)
    work_dir.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in CONTENDERS}

    def contender(name: str):
        processes, threads = CONTENDERS[name]
        env = child_environment(threads)

        def call() -> None:
            out = work_dir / f"{name}-{len(runs[name])}"  # a fresh folder every run: nothing to resume
            info = run_once(command(script, processes, [*plan_args, "--out", str(out)]), env, out,
                            settings.processes_timeout_s)
            runs[name].append({"out": out, "info": info})

        return call

    load_start = [round(x, 2) for x in os.getloadavg()]
    start = time.perf_counter()
    wall = interleaved({name: contender(name) for name in CONTENDERS}, settings.processes_rounds,
                       settings.processes_warmup)
    elapsed = time.perf_counter() - start
    load_end = [round(x, 2) for x in os.getloadavg()]
    timed_runs = {name: r[settings.processes_warmup:] for name, r in runs.items()}
    generation = {name: [r["info"]["seconds"] for r in rs] for name, rs in timed_runs.items()}

    # pixels: every contender of a round against the 1-process run with the sharded runs' thread count
    differences: dict[str, list[int | None]] = {name: [] for name in CONTENDERS}
    written: dict[str, list[int]] = {name: [] for name in CONTENDERS}
    for i in range(settings.processes_rounds):
        reference = read_images(timed_runs[REFERENCE][i]["out"])
        for name in CONTENDERS:
            found = read_images(timed_runs[name][i]["out"])
            written[name].append(len(found))
            differences[name].append(max_pixel_difference(found, reference))

    contenders = {}
    for name, (processes, threads) in CONTENDERS.items():
        rs = timed_runs[name]
        wall_median, generation_median = statistics.median(wall[name]), statistics.median(generation[name])
        contenders[name] = {
            "processes": processes, "threads_per_process": threads,
            "command": " ".join(["python", *command(script, processes, [])[1:-1], shown(script), "..."]),
            "wall_seconds": summary(wall[name]), "generation_seconds": summary(generation[name]),
            "startup_seconds_median": round(wall_median - generation_median, 3),
            "images_per_s_generation": round(images / generation_median, 4),
            "images_per_s_wall": round(images / wall_median, 4),
            "images_written": written[name],
            "generated_now": [r["info"]["generated_now"] for r in rs],
            "num_processes_recorded": [r["info"]["num_processes"] for r in rs],
            "max_pixel_difference_vs_reference": differences[name],
        }
    settings_recorded = timed_runs[REFERENCE][0]["info"]["settings"]

    def speedup(times: dict[str, list[float]], baseline: str) -> float:
        return round(paired_ratio(times, baseline, SHARDED), 4)  # median over rounds of t(baseline) / t(2)

    return {
        "model": model.name, "script": shown(script), "launcher": "python " + " ".join(LAUNCHER),
        "plan": {"emotions": emotions, "per_emotion": settings.processes_per_emotion, "images": images,
                 "steps": settings_recorded["num_inference_steps"], "batch_size": settings.processes_batch_size,
                 "pipeline_calls": len(emotions) * calls_per_emotion, "size": settings_recorded["size"],
                 "guidance_scale": settings_recorded["guidance_scale"],
                 "scheduler": settings_recorded["scheduler"]},
        "rounds": settings.processes_rounds, "warmup": settings.processes_warmup,
        "baseline": BASELINE, "reference": REFERENCE, "sharded": SHARDED,
        "images_per_s_uses": "generation_seconds (generation.json 'seconds': after start-up and model load); "
                             "images_per_s_wall uses the command's whole wall time",
        "contenders": contenders,
        "speedup_generation": speedup(generation, BASELINE),
        "speedup_wall": speedup(wall, BASELINE),
        "speedup_generation_vs_1_thread": speedup(generation, REFERENCE),
        "speedup_wall_vs_1_thread": speedup(wall, REFERENCE),
        "two_processes_write_the_images_of_one": all(d == 0 for d in differences[SHARDED]),
        "load_average_start": load_start, "load_average_end": load_end,
        "measured_s": round(elapsed, 1),
    }
