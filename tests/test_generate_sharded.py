"""eval/generate.py across processes: the same images, seeds and manifest as one process, and a killed run
resumes without redoing what it finished."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import run_torchrun

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "assets" / "uniemo-tiny"


def _args(out: Path) -> list[str]:
    return ["--model", str(BUNDLE), "--out", str(out), "--per-emotion", "3", "--steps", "3", "--batch-size", "2",
            "--emotions", "amusement,fear,sadness", "--transfer-nouns", "cake", "--seed", "5"]


def _images(folder: Path) -> dict[str, np.ndarray]:
    return {p.relative_to(folder).as_posix(): np.asarray(Image.open(p).convert("RGB"))
            for p in sorted(folder.rglob("*.png"))}


def _manifest(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_two_processes_write_what_one_writes_and_a_killed_run_resumes(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    # the single process runs with 1 thread, as each of the two does: a different thread count may round a
    # matmul differently (a grey level here and there), which is not what this test is about
    run_torchrun(ROOT / "eval" / "generate.py", _args(one), nproc=1)
    info = json.loads((one / "generation.json").read_text())
    assert info["generated_now"] == 18 and info["num_processes"] == 1
    run_torchrun(ROOT / "eval" / "generate.py", _args(two))
    info_two = json.loads((two / "generation.json").read_text())
    assert info_two["num_processes"] == 2 and info_two["generated_now"] == 18
    images_one, images_two = _images(one), _images(two)
    assert len(images_one) == 18 and images_one.keys() == images_two.keys()
    assert all(np.array_equal(images_one[k], images_two[k]) for k in images_one)  # pixel for pixel
    assert _manifest(one) == _manifest(two)  # same paths, seeds and settings, same order
    assert not list(two.rglob("*.partial")) and (two / ".records.lock").is_file()

    # a run killed half-way: some images never written, one cut off mid-write
    gone = sorted(images_two)[::3]
    for name in gone:
        (two / name).unlink()
    cut = two / sorted(images_two)[1]
    cut.write_bytes(cut.read_bytes()[:60])
    run_torchrun(ROOT / "eval" / "generate.py", _args(two))
    resumed = json.loads((two / "generation.json").read_text())
    assert resumed["generated_now"] == len(gone) + 1  # only the missing and the cut-off images
    after = _images(two)
    redone = set(gone) | {cut.relative_to(two).as_posix()}
    assert all(np.array_equal(images_one[k], after[k]) for k in images_one if k not in redone)  # untouched
    # a redone image comes from a call with other images beside it (only the missing ones): the same seed and
    # condition, but a batched matmul may round differently, by a grey level
    assert all(np.abs(images_one[k].astype(int) - after[k].astype(int)).max() <= 1 for k in redone)
    assert _manifest(two) == _manifest(one)
