"""uniemo.memory_bank: a bounded bank of generated images in the slots of the most confident real samples;
and a tiny joint run with the bank switched on."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from uniemo.data.base import EmotionDataset, ImageEntry, collate_records
from uniemo.memory_bank import BankedDataset, MemoryBank, confidence_pool
from conftest import run_torchrun

ROOT = Path(__file__).resolve().parents[1]


def _items(n, start=0):
    return [ImageEntry(path=f"gen_{start + i}.png", label=(start + i) % 8) for i in range(n)]


def test_size_and_proportion_stay_fixed():
    bank = MemoryBank(100, 0.2)
    assert bank.capacity == 20 and bank.num_slots == 0 and len(bank.sources()) == 100
    rng = np.random.default_rng(0)
    for round_size in (5, 30, 3):
        bank.update(_items(round_size, start=bank.updates * 100), rng.random(100))
        sources = bank.sources()
        assert len(sources) == 100  # the training set keeps its size
        assert sum(kind == "bank" for kind, _ in sources) == 20  # and p = 0.2 from the first update on
        assert bank.generated_share() == pytest.approx(0.2)
        assert len(bank.items) <= bank.capacity
    # first in, first out: the 30 images of round two pushed the 5 of round one out, 3 newer ones came after
    assert [e.path for e in bank.items[:3]] == ["gen_202.png", "gen_201.png", "gen_200.png"]
    assert all(e.path.startswith(("gen_1", "gen_2")) for e in bank.items)


def test_replaces_the_most_confident_real_samples():
    bank = MemoryBank(10, 0.3)
    confidences = np.array([0.1, 0.9, 0.5, 0.95, 0.2, 0.9, 0.3, 0.0, 0.8, 0.4])
    assert bank.update(_items(2), confidences) == [1, 3, 5]
    real_left = [i for kind, i in bank.sources() if kind == "real"]
    assert real_left == [0, 2, 4, 6, 7, 8, 9]
    # ties go to the lower index; unscored (NaN) samples are never replaced
    tied = np.array([np.nan, 0.5, 0.5, 0.5, 0.5, 0.1, np.nan, 0.2, 0.3, np.nan])
    assert bank.update([], tied) == [1, 2, 3]
    with pytest.raises(ValueError, match="scored"):
        bank.update([], np.array([0.9, 0.8] + [np.nan] * 8))
    with pytest.raises(ValueError, match="one value per real sample"):
        bank.update([], np.zeros(9))


def test_without_repeat_the_bank_grows_to_its_share():
    bank = MemoryBank(100, 0.2, repeat=False)
    bank.update(_items(5), np.linspace(0, 1, 100))
    assert bank.num_slots == 5 and bank.replaced == list(range(95, 100))
    assert len(bank.sources()) == 100


def test_state_round_trip_and_bad_settings():
    bank = MemoryBank(50, 0.1)
    bank.update(_items(4), np.arange(50.0))
    other = MemoryBank(50, 0.1)
    other.load_state_dict(json.loads(json.dumps(bank.state_dict())))
    assert other.sources() == bank.sources() and other.updates == 1
    with pytest.raises(ValueError, match="proportion"):
        MemoryBank(10, 1.0)
    with pytest.raises(ValueError, match="rounds to no bank slot"):
        MemoryBank(2, 0.1)
    assert confidence_pool(10, None, 0) == list(range(10))
    pool = confidence_pool(100, 7, seed=3)
    assert len(pool) == 7 and pool == sorted(pool) and pool == confidence_pool(100, 7, seed=3)


def test_banked_dataset_serves_generated_records_without_attributes(tmp_path):
    paths = []
    for i in range(6):
        path = tmp_path / f"img{i}.png"
        Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(path)
        paths.append(str(path))
    real = EmotionDataset([ImageEntry(p, i % 2, scene="sky", objects=["cake"]) for i, p in enumerate(paths[:5])],
                          ("a", "b"))
    bank = MemoryBank(5, 0.4)
    banked = BankedDataset(real, bank, transform=lambda im: torch.zeros(3, 4, 4))
    assert [r["generated"] for r in (banked[i] for i in range(5))] == [False] * 5
    bank.update([ImageEntry(paths[5], 1)], np.array([0.1, 0.9, 0.2, 0.8, 0.3]))
    banked.refresh()
    records = [banked[i] for i in range(len(banked))]
    assert len(records) == 5
    generated = [r for r in records if r["generated"]]
    assert len(generated) == 2 and all(r["scene"] is None and r["objects"] == [] and r["labels"] == 1
                                       for r in generated)
    assert {r["path"] for r in records if not r["generated"]} == {paths[0], paths[2], paths[4]}
    batch = collate_records(records)
    assert batch["generated"].tolist() == [False, False, False, True, True]


def test_tiny_joint_run_with_the_memory_bank(learnable_emoset, tiny_stage1_dir, tiny_sd_dir, tiny_correlation_dir,
                                             tmp_path):
    from train import joint

    out = tmp_path / "bank"
    summary = joint.main(["--preset", "tiny", f"data.root={learnable_emoset}", f"model.stage1={tiny_stage1_dir}",
                          f"model.diffusion={tiny_sd_dir}", f"model.correlation={tiny_correlation_dir}",
                          f"out_dir={out}", "max_steps=2", "validation_every=0", "checkpoint_every=1",
                          "memory_bank.enabled=true", "memory_bank.every=1", "memory_bank.per_emotion=3",
                          "memory_bank.steps=2", "memory_bank.space_per_emotion=4", "memory_bank.scheduler=ddim"])
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    update = [r["memory_bank"] for r in records if "memory_bank" in r]
    assert len(update) == 1 and update[0]["generated"] == 24
    # 3 per emotion: each ranking's band holds ranks 0-1, so 1 or 2 per emotion lie in both
    assert 8 <= update[0]["kept"] <= 16
    capacity = round(0.2 * 192)
    assert update[0]["bank_slots"] == update[0]["replaced"] == capacity
    assert summary["memory_bank"]["generated_share"] == pytest.approx(capacity / 192)
    assert summary["num_train_items"] == 192  # the training set kept its size
    assert all(np.isfinite(r["train/loss_total"]) for r in records if "train/loss_total" in r)
    state = json.loads((out / "memory_bank" / "state.json").read_text())
    assert len(state["replaced"]) == capacity and len(state["items"]) == update[0]["kept"]
    scores = json.loads((out / "memory_bank" / "step-000001" / "scores.json").read_text())["candidates"]
    assert sum(c["kept"] for c in scores) == update[0]["kept"]
    # the checkpoint after the update carries the bank, so a resumed run starts from it
    saved = json.loads((out / "checkpoints" / "checkpoint-1" / "memory_bank.json").read_text())
    assert saved["replaced"] == state["replaced"]
    assert (out / "final" / "uniemo.json").is_file()


@pytest.mark.slow
def test_two_processes_build_the_bank_of_one(learnable_emoset, tiny_stage1_dir, tiny_sd_dir, tiny_correlation_dir,
                                             tmp_path):
    """torchrun with 2 CPU processes (gloo), same global batch and seed: each process generates, scores and
    measures its share of the update, and the bank they agree on is the single-process bank, image for image
    (the kept images to within one grey level) and slot for slot. The expert contrastive losses are off, as in stage 1's
    process test: their negatives are the rows of one process, so they differ with the split by design."""
    from train import joint

    common = ["--preset", "tiny", f"data.root={learnable_emoset}", f"model.stage1={tiny_stage1_dir}",
              f"model.diffusion={tiny_sd_dir}", f"model.correlation={tiny_correlation_dir}", "max_steps=2",
              "validation_every=0", "memory_bank.enabled=true", "memory_bank.every=1", "memory_bank.per_emotion=3",
              "memory_bank.steps=2", "memory_bank.space_per_emotion=4", "memory_bank.scheduler=ddim",
              "batch_size=8", "report_to=none", "loss.scene=0", "loss.object=0"]
    # both runs with 1 thread per process: another thread count may round a matmul differently
    run_torchrun(ROOT / "train" / "joint.py", [*common, f"out_dir={tmp_path / 'one'}"], nproc=1)
    run_torchrun(ROOT / "train" / "joint.py", [*common, f"out_dir={tmp_path / 'two'}"])

    def bank(run):
        state = json.loads((run / "memory_bank" / "state.json").read_text())
        items = [(Path(e["path"]).relative_to(run).as_posix(), e["label"]) for e in state["items"]]
        return state["replaced"], items

    replaced_one, items_one = bank(tmp_path / "one")
    replaced_two, items_two = bank(tmp_path / "two")
    assert items_one and replaced_one
    assert replaced_two == replaced_one and items_two == items_one
    for name, _ in items_one:
        a = np.asarray(Image.open(tmp_path / "one" / name))
        b = np.asarray(Image.open(tmp_path / "two" / name))
        # the weights after one step differ by float summation order (an all-reduce against one batch)
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1, name
    scores = [json.loads((run / "memory_bank" / "step-000001" / "scores.json").read_text())["candidates"]
              for run in (tmp_path / "one", tmp_path / "two")]
    assert [c["kept"] for c in scores[0]] == [c["kept"] for c in scores[1]]
