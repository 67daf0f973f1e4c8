"""The claims table: fewer labelled images per emotion, the table's arithmetic, and the runner end to end."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from uniemo.claims_table import (README_END, README_START, plot_claims, stats, summarise, table_markdown,
                                 update_readme, write_table)
from uniemo.config import build_config
from uniemo.data.base import ImageEntry
from uniemo.data.subsets import per_class_subset
from uniemo.readme_block import quoted_block
from uniemo.training.claims_config import ClaimsConfig
from uniemo.training.data_config import DataConfig
from uniemo.training.run import restrict_training_set

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "assets" / "uniemo-tiny"


def _entries(counts):
    return [ImageEntry(path=f"{label}_{i}.png", label=label) for label, n in enumerate(counts) for i in range(n)]


def test_per_class_subset_keeps_n_per_label_in_order_and_by_seed():
    entries = _entries([10, 3, 7])
    kept = per_class_subset(entries, 4, seed=1)
    assert [sum(e.label == k for e in kept) for k in range(3)] == [4, 3, 4]  # label 1 has only 3: all kept
    positions = [entries.index(e) for e in kept]
    assert positions == sorted(positions)  # original order
    assert per_class_subset(entries, 4, seed=1) == kept  # the same images for the same seed
    assert any(per_class_subset(entries, 4, seed=s) != kept for s in range(2, 6))
    # one label's draw does not depend on how many images the others have
    more = _entries([10, 3, 12])
    assert [e.path for e in per_class_subset(more, 4, 1) if e.label == 0] == [e.path for e in kept if e.label == 0]
    with pytest.raises(ValueError, match="train_per_class"):
        per_class_subset(entries, 0, seed=1)


def test_restrict_training_set_applies_per_class_then_the_prefix():
    dataset = SimpleNamespace(entries=_entries([6, 6]))
    restrict_training_set(dataset, DataConfig(train_per_class=2, train_subset_seed=3, max_train_samples=3))
    assert len(dataset.entries) == 3 and [e.label for e in dataset.entries] == [0, 0, 1]
    untouched = SimpleNamespace(entries=_entries([6, 6]))
    restrict_training_set(untouched, DataConfig())
    assert len(untouched.entries) == 12


def _results():
    """Three seeds whose differences are hand-computable: queries +5, +3, +1 points (mean 3, std 2)."""
    arms = {"1": (0.80, 0.75, 0.82, 0.81, 0.85, 0.84), "2": (0.70, 0.67, 0.70, 0.72, 0.71, 0.71),
            "3": (0.60, 0.59, 0.66, 0.63, 0.64, 0.65)}
    names = ("stage1", "stage1_no_queries", "joint", "joint_lu_only", "with_feedback", "without_feedback")
    return {"low": {seed: {"top1": dict(zip(names, values))} for seed, values in arms.items()}}


def test_stats_and_summary_are_hand_computable():
    s = stats([5.0, 3.0, 1.0])
    assert s["mean"] == pytest.approx(3.0) and s["std"] == pytest.approx(2.0) and s["n"] == 3
    assert stats([4.0])["std"] is None
    summary = summarise(_results())["low"]
    queries = summary["claims"]["queries"]
    assert queries["difference"]["values"] == pytest.approx([5.0, 3.0, 1.0])
    assert queries["difference"]["mean"] == pytest.approx(3.0) and queries["difference"]["std"] == pytest.approx(2.0)
    assert queries["treatment_wins"] == 3
    implicit = summary["claims"]["implicit"]  # joint - stage1: +2, 0, +6
    assert implicit["difference"]["values"] == pytest.approx([2.0, 0.0, 6.0])
    assert implicit["treatment_wins"] == 2 and implicit["ties"] == 1
    explicit = summary["claims"]["explicit"]  # with - without feedback: +1, 0, -1
    assert explicit["difference"]["mean"] == pytest.approx(0.0) and explicit["treatment_wins"] == 1
    assert summary["arms"]["stage1"]["mean"] == pytest.approx(70.0)
    assert summary["weight_change"] == {}  # none recorded in these results
    with_changes = _results()
    for k, seed in enumerate(with_changes["low"].values()):
        seed["weight_change"] = {"stage 2": 0.01 * (k + 1)}
    assert summarise(with_changes)["low"]["weight_change"]["stage 2"]["mean"] == pytest.approx(0.02)
    table = table_markdown(summarise(_results()))
    assert "| +3.00 ± 2.00 | 3 of 3 |" in table and "| 70.00 ± 10.00 |" in table


def test_a_regime_without_an_arm_leaves_its_claims_out(tmp_path):
    results = _results()
    for seed in results["low"].values():
        del seed["top1"]["with_feedback"]
    summary = summarise(results)
    assert "explicit" not in summary["low"]["claims"] and "queries" in summary["low"]["claims"]
    cfg = ClaimsConfig(data_root="x")
    write_table(summary, cfg, tmp_path / "claims.md")
    assert "feedback round vs" not in (tmp_path / "claims.md").read_text()
    plot_claims(summary, tmp_path / "claims.png")
    assert (tmp_path / "claims.png").stat().st_size > 10_000


def test_update_readme_rewrites_only_its_block(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{README_START}\nold table\n{README_END}\nrest\n")
    summary = summarise(_results())
    update_readme(readme, summary)
    assert readme.read_text() == f"intro\n{README_START}\n{table_markdown(summary)}{README_END}\nrest\n"
    (tmp_path / "bare.md").write_text("no block\n")
    with pytest.raises(ValueError, match="claims:start"):
        update_readme(tmp_path / "bare.md", summary)
    from uniemo.training.claims import run_claims

    with pytest.raises(ValueError, match="block"):  # refused before any training
        run_claims(ClaimsConfig(data_root=str(tmp_path), readme=str(tmp_path / "bare.md")),
                   {"stage1": "-", "probe": "-", "joint": "-"})


def test_readme_quotes_the_measured_claims_table():
    """The README's claims table is the one the command wrote into docs/claims/claims.json."""
    measured = json.loads((ROOT / "docs" / "claims" / "claims.json").read_text())
    readme = (ROOT / "README.md").read_text()
    assert quoted_block(readme, README_START, README_END) == table_markdown(measured["summary"]).strip()
    summary = measured["summary"]
    assert all(len(part["seeds"]) >= 3 for part in summary.values()), "3 seeds or more in every regime"
    assert set(summary) == {"low", "default"}


def test_config_rejects_an_unknown_regime_and_repeated_seeds():
    with pytest.raises(ValueError, match="regimes"):
        build_config(ClaimsConfig, overrides={"regimes": ["tiny"]})
    with pytest.raises(ValueError, match="seeds"):
        build_config(ClaimsConfig, overrides={"seeds": [1, 1]})


@pytest.mark.slow
def test_claims_runner_end_to_end_resumes_and_reruns_only_what_changed(tmp_path):
    """Every arm of one regime and seed on a small EmoShapes with UniEmo-Tiny's CLIP and SD, a few steps each;
    a second call keeps every arm; a changed continuation budget reruns the two continuations only."""
    from uniemo.data.emoshapes import EmoShapesConfig, generate_emoshapes
    from uniemo.training.claims import MEASURED_ARMS, RESULT_FILE, WEIGHT_CHANGES, run_claims

    configs = ROOT / "train" / "configs"
    presets = {"stage1": configs / "understanding_emoshapes.yaml", "probe": configs / "probe_tiny.yaml",
               "joint": configs / "joint_emoshapes.yaml"}
    data = generate_emoshapes(tmp_path / "data", EmoShapesConfig(num_train=96, num_val=24, num_test=32, seed=7),
                              progress=False)
    options = dict(data_root=str(data), clip=str(BUNDLE / "clip"), diffusion=str(BUNDLE / "diffusion"),
                   out_dir=str(tmp_path / "runs"), seeds=(4,), regimes=("low",), low_per_class=3,
                   low_stage1_batch_size=8, low_stage1_epochs=2, probe_epochs=2, joint_steps=2, joint_batch_size=8,
                   feedback_per_emotion=2, feedback_sampler_steps=2, continuation_steps=2, eval_batch_size=32)
    out = run_claims(ClaimsConfig(**options), presets)
    seed = out["results"]["low"]["4"]
    assert set(seed["top1"]) == set(MEASURED_ARMS)
    changes = seed["weight_change"]
    assert set(changes) == {name for name, _, _ in WEIGHT_CHANGES}
    assert changes["stage 2"] > 0 and changes["continuation"] > 0  # the stage-2 arms trained the classifier
    assert "largest weight change" in (tmp_path / "runs" / "claims.md").read_text()
    assert all(0.0 <= v <= 1.0 for v in seed["top1"].values())
    assert seed["feedback_round"]["num_candidates"] == 16
    saved = json.loads((tmp_path / "runs" / "claims.json").read_text())
    assert saved["results"] == json.loads(json.dumps(out["results"]))
    assert (tmp_path / "runs" / "claims.md").is_file() and (tmp_path / "runs" / "claims.png").is_file()
    # the low regime trained on 3 images per emotion
    folder = tmp_path / "runs" / "low" / "seed4"
    stage1_config = (folder / "stage1" / "config.yaml").read_text()
    assert "train_per_class: 3" in stage1_config and "train_subset_seed: 4" in stage1_config

    def stamps():
        return {p.parent.name: p.stat().st_mtime_ns for p in folder.glob(f"*/{RESULT_FILE}")}

    before = stamps()
    assert run_claims(ClaimsConfig(**options), presets)["results"] == out["results"]
    assert stamps() == before
    run_claims(ClaimsConfig(**{**options, "continuation_steps": 3}), presets)
    after = stamps()
    changed = {name for name in before if after[name] != before[name]}
    assert changed == {"with_feedback", "without_feedback"}
