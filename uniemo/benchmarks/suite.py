"""Every measurement in one run, with the machine it ran on: the results ``eval/benchmark.py`` writes as JSON."""

from __future__ import annotations

import os
import platform
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import diffusers
import torch
import transformers

from uniemo.benchmarks.demo import bench_demo
from uniemo.benchmarks.generation import bench_generation
from uniemo.benchmarks.generation_processes import bench_generation_processes
from uniemo.benchmarks.settings import BenchmarkSettings
from uniemo.benchmarks.training import bench_memory, bench_training
from uniemo.benchmarks.understanding import bench_understanding

TIMING_METHOD = ("warm-up call(s), then interleaved rounds with alternating order; medians of seconds, ratios = "
                 "median of per-round ratios; gc.collect() before every timed call")


def cpu_model() -> str:
    """The processor's name (``/proc/cpuinfo`` on Linux, else what ``platform`` knows; "" when neither says)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def environment() -> dict[str, Any]:
    """Versions, the processor, core and thread counts, and the load average as the run starts."""
    return {"python": platform.python_version(), "platform": platform.platform(), "cpu_model": cpu_model(),
            "torch": torch.__version__, "transformers": transformers.__version__,
            "diffusers": diffusers.__version__, "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "load_average_start": [round(x, 2) for x in os.getloadavg()]}


def run_benchmarks(settings: BenchmarkSettings, assets: str | os.PathLike, command: str, quick: bool,
                   threads: int = 1, generate_script: str | os.PathLike | None = None) -> dict[str, Any]:
    """Every measurement of ``uniemo.benchmarks`` with ``threads`` torch intra-op threads (the caller's setting
    and random stream are restored after), its pass/fail checks and the environment.

    Args:
        settings: sizes and repeat counts (``BenchmarkSettings.full()`` / ``quick()``).
        assets: the folder holding ``uniemo-tiny/`` and ``examples/`` (the demo measurement's model and image;
            UniEmo-Tiny is also the model of the 1- and 2-process generation runs).
        command: the command line recorded with the results.
        quick: recorded with the results (the README table is made from full runs).
        threads: torch intra-op threads while timing in this process (the generation subprocesses set their
            own: 2 for the single process, 1 each for two).
        generate_script: eval/generate.py, run as subprocesses on 1 and 2 processes; ``None`` leaves that
            measurement out.
    """
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    start = time.perf_counter()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        results: dict[str, Any] = {"command": command, "quick": quick,
                                   "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
                                   "environment": environment(), "timing_method": TIMING_METHOD}
        with torch.random.fork_rng(devices=[]), tempfile.TemporaryDirectory() as tmp:
            torch.manual_seed(0)
            sections = {"understanding": lambda: bench_understanding(settings),
                        "generation": lambda: bench_generation(settings),
                        "training": lambda: bench_training(settings),
                        "memory": lambda: bench_memory(settings),
                        "demo": lambda: bench_demo(settings, Path(assets), Path(tmp))}
            if generate_script is not None:
                sections["generation_processes"] = lambda: bench_generation_processes(
                    settings, Path(assets) / "uniemo-tiny", Path(generate_script),
                    Path(tmp) / "generation-processes")
            for name, run in sections.items():
                section_start = time.perf_counter()
                results[name] = run()
                results[name]["elapsed_s"] = round(time.perf_counter() - section_start, 1)
    finally:
        torch.set_num_threads(previous_threads)  # also called inside test processes
    results["environment"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    results["checks"] = {
        "understanding_within_15_percent_of_ideal": results["understanding"]["within_15_percent"],
        "generation_at_most_1_05_of_stock": results["generation"]["at_most_1_05"],
        "frozen_module_grad_bytes_zero": results["memory"]["frozen_grad_bytes_is_zero"],
        "batching_raises_per_image_throughput": results["training"]["per_image_speedup"] > 1,
    }
    if "generation_processes" in results:
        results["checks"]["two_processes_write_the_images_of_one"] = (
            results["generation_processes"]["two_processes_write_the_images_of_one"])
    results["elapsed_seconds"] = round(time.perf_counter() - start, 1)
    return results
