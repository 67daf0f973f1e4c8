"""The claims table: the paper's three claims about understanding, each against a control of the same budget,
over seeds and in two data regimes (``uniemo.training.claims_config``; the command line is ``train/claims.py``).

For every regime and seed, ``run_claims`` trains these arms, each in ``out_dir/<regime>/seed<S>/<arm>/``, and
measures the top-1 accuracy of each trained classifier on the test split:

=====================  ==================================================================================
``stage1``             stage 1 (``run_stage1``) from the pretrained CLIP, expert queries on
``stage1_no_queries``  the same run without expert queries (the preset's head, the same epochs)
``probe``              the α probe and table on the regime's own training images (``run_probe``; no accuracy)
``joint``              stage 2 from ``stage1`` (L_U + L_cond + L_diff, the UNet frozen), ``joint_steps``
``joint_lu_only``      the same stage-2 run with L_cond and L_diff weighted 0: only L_U trains the same parts
``feedback_round``     one explicit-feedback round from ``joint`` (``run_feedback_round``; no accuracy)
``with_feedback``      stage 2 continued from ``joint`` for ``continuation_steps`` on real + kept images
``without_feedback``   the same continuation on real images only
=====================  ==================================================================================

An arm is kept from an earlier run in the same ``out_dir`` when its ``result.json`` carries the same signature
(its own options and the signatures of the arms it reads), so an interrupted table resumes where it stopped.
``uniemo.claims_table`` turns the results into the table and its figure.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import load_file

from uniemo.claims_table import README_END, README_START, plot_claims, summarise, update_readme, write_table
from uniemo.config import build_config, config_to_dict, load_preset, merge_dicts, overrides_to_dict
from uniemo.readme_block import check_block
from uniemo.training.claims_config import ClaimsConfig
from uniemo.training.feedback_round import run_feedback_round
from uniemo.training.feedback_round_config import FeedbackRoundConfig
from uniemo.training.joint import run_joint
from uniemo.training.joint_config import JointConfig
from uniemo.training.probe_config import ProbeConfig
from uniemo.training.probe_table import run_probe
from uniemo.training.stage1 import run_stage1
from uniemo.training.stage1_config import UnderstandingConfig
from uniemo.understanding_eval import evaluate

logger = logging.getLogger(__name__)
RESULT_FILE = "result.json"
MEASURED_ARMS: tuple[str, ...] = ("stage1", "stage1_no_queries", "joint", "joint_lu_only", "with_feedback",
                                  "without_feedback")


def signature(options: dict, reads: tuple[str, ...] = ()) -> str:
    """A short hash of an arm's resolved options and the signatures of the arms it reads."""
    text = json.dumps({"options": options, "reads": list(reads)}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Arms:
    """Runs the arms of one regime and seed, keeping those an earlier run finished with the same signature."""

    def __init__(self, cfg: ClaimsConfig, folder: Path):
        self.cfg, self.folder = cfg, folder
        self.signatures: dict[str, str] = {}

    def run(self, name: str, options: dict, reads: tuple[str, ...], train) -> dict:
        """``train()`` unless ``folder/name/result.json`` has this signature; returns the arm's record."""
        sig = signature(options, tuple(self.signatures[r] for r in reads))
        self.signatures[name] = sig
        result_file = self.folder / name / RESULT_FILE
        if self.cfg.resume and result_file.is_file():
            record = json.loads(result_file.read_text())
            if record.get("signature") == sig:
                logger.info("claims: %s kept from an earlier run", result_file.parent)
                return record
        t0 = time.time()
        record = {"signature": sig, **train(), "seconds": round(time.time() - t0, 1)}
        result_file.parent.mkdir(parents=True, exist_ok=True)
        result_file.write_text(json.dumps(record, indent=1) + "\n")
        return record


def top1_on_test(cfg: ClaimsConfig, model_folder: Path) -> float:
    """Top-1 accuracy of a model folder's classifier on the EmoShapes test split."""
    return evaluate(model_folder, "emoshapes", cfg.data_root, "test", batch_size=cfg.eval_batch_size)["top1"]


def weight_change(before: Path, after: Path) -> float:
    """The largest absolute change of any classifier weight between two model folders."""
    a, b = (load_file(str(folder / "classifier" / "model.safetensors")) for folder in (before, after))
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


# (name, folder before, folder after): how far each stage-2 arm moved the classifier, and what its treatment
# added beyond its control
WEIGHT_CHANGES: tuple[tuple[str, str, str], ...] = (
    ("stage 2", "stage1", "joint"), ("stage 2 with L_U only", "stage1", "joint_lu_only"),
    ("L_cond and L_diff beyond L_U", "joint_lu_only", "joint"), ("continuation", "joint", "without_feedback"),
    ("kept images beyond the continuation", "without_feedback", "with_feedback"))


def run_seed(cfg: ClaimsConfig, regime: str, seed: int, presets: dict[str, Path]) -> dict:
    """Every arm of one regime and seed; returns ``{arm: top-1}`` and the feedback round's counts."""
    folder = Path(cfg.out_dir) / regime / f"seed{seed}"
    arms = Arms(cfg, folder)
    low = regime == "low"
    data = {"root": cfg.data_root, "dataset": "emoshapes"}
    if low:
        data.update(train_per_class=cfg.low_per_class, train_subset_seed=seed)
    quiet = {"report_to": "none"}

    # stage 1, with and without the expert queries
    stage1_options = merge_dicts(quiet, {
        "data": data, "model": {"clip": cfg.clip}, "seed": seed, "eval_batch_size": cfg.eval_batch_size,
        "epochs": cfg.low_stage1_epochs if low else cfg.default_stage1_epochs,
        "batch_size": cfg.low_stage1_batch_size if low else cfg.default_stage1_batch_size,
        # one checkpoint at the end; in the low regime an epoch is a few steps: select on val every 25 steps
        "checkpoint_every": 10 ** 9, "checkpoints_total_limit": 1, "eval_every": 25 if low else None})
    head = load_preset(presets["stage1"]).get("model", {}).get("overrides", {})
    variants = {"stage1": stage1_options,
                "stage1_no_queries": merge_dicts(stage1_options,
                                                 {"model": {"overrides": {**head, "use_queries": False}}})}
    top1 = {}
    for name, options in variants.items():
        s1 = build_config(UnderstandingConfig, [presets["stage1"]], {**options, "out_dir": str(folder / name)})

        def train_stage1(s1=s1):
            run_stage1(s1)
            return {"top1": top1_on_test(cfg, Path(s1.out_dir) / "final")}

        top1[name] = arms.run(name, config_to_dict(s1), (), train_stage1)["top1"]

    # the α probe of this regime (its own labelled images)
    probe_cfg = build_config(ProbeConfig, [presets["probe"]], {
        "data": {**data, "num_workers": 0}, "model": {"clip": cfg.clip}, "epochs": cfg.probe_epochs, "seed": seed,
        "out_dir": str(folder / "probe")})
    arms.run("probe", config_to_dict(probe_cfg), (), lambda: {"metrics": run_probe(probe_cfg)})
    probe_dir = str(folder / "probe")

    # stage 2 after stage 1, and its control with the generation losses off
    joint_base = merge_dicts(merge_dicts(quiet, overrides_to_dict(list(cfg.joint_overrides))), {
        "data": data, "seed": seed, "batch_size": cfg.joint_batch_size, "validation_every": 0,
        "checkpoint_every": 10 ** 9, "checkpoints_total_limit": 1,
        "model": {"diffusion": cfg.diffusion, "correlation": probe_dir, "copy_diffusion": False}})

    def joint_arm(name: str, options: dict, reads: tuple[str, ...]) -> float:
        jc = build_config(JointConfig, [presets["joint"]], merge_dicts(options, {"out_dir": str(folder / name)}))

        def train_joint():
            summary = run_joint(jc)
            return {"top1": top1_on_test(cfg, Path(jc.out_dir) / "final"), "summary": summary}

        return arms.run(name, config_to_dict(jc), reads, train_joint)["top1"]

    after_stage1 = merge_dicts(joint_base, {"max_steps": cfg.joint_steps,
                                            "model": {"stage1": str(folder / "stage1" / "final")}})
    top1["joint"] = joint_arm("joint", after_stage1, ("stage1", "probe"))
    top1["joint_lu_only"] = joint_arm("joint_lu_only", merge_dicts(after_stage1, {
        "loss": {"condition": 0.0, "diffusion": 0.0}}), ("stage1", "probe"))

    # one explicit-feedback round from the joint model, then the two continuations
    joint_final = folder / "joint" / "final"
    round_cfg = FeedbackRoundConfig(model=str(joint_final), probe=probe_dir, out_dir=str(folder / "feedback_round"),
                                    per_emotion=cfg.feedback_per_emotion, seed=seed,
                                    steps=cfg.feedback_sampler_steps, batch_size=16)
    kept = arms.run("feedback_round", asdict(round_cfg), ("joint", "probe"), lambda: {
        k: v for k, v in run_feedback_round(round_cfg).items()
        if k in ("num_candidates", "num_kept", "probe_accuracy_on_candidates", "manifest")})
    continued = merge_dicts(joint_base, {"max_steps": cfg.continuation_steps, "model": {
        "stage1": str(joint_final), "init_fusion": str(joint_final)}})
    top1["with_feedback"] = joint_arm("with_feedback", merge_dicts(continued, {"feedback": {
        "manifest": kept["manifest"], "proportion": cfg.feedback_proportion}}), ("joint", "feedback_round"))
    top1["without_feedback"] = joint_arm("without_feedback", continued, ("joint",))
    changes = {name: weight_change(folder / a / "final", folder / b / "final") for name, a, b in WEIGHT_CHANGES}
    return {"top1": top1, "weight_change": changes,
            "feedback_round": {k: kept[k] for k in ("num_candidates", "num_kept", "probe_accuracy_on_candidates")}}


def run_claims(cfg: ClaimsConfig, presets: dict[str, Path]) -> dict:
    """Every regime and seed of ``cfg``; writes ``claims.json``, ``claims.md`` and ``claims.png`` to
    ``cfg.report_dir`` (default ``cfg.out_dir``) after each seed, so the table grows as the arms finish.

    Args:
        presets: the recipes' preset files the arms start from: ``stage1``, ``probe`` and ``joint`` (for
            EmoShapes: ``train/configs/understanding_emoshapes.yaml``, ``probe_tiny.yaml``,
            ``joint_emoshapes.yaml``).

    Returns:
        ``{"settings", "results": {regime: {seed: ...}}, "summary"}`` (also ``claims.json``).
    """
    cfg.validate()
    if not cfg.data_root:
        raise ValueError("data_root is not set: pass data_root=<EmoShapes folder>")
    for key in ("stage1", "probe", "joint"):
        if key not in presets:
            raise ValueError(f"presets lacks {key!r}")
    if cfg.readme:  # refuse before training, not after the first seed
        check_block(cfg.readme, README_START, README_END)
    torch.set_num_threads(cfg.threads)
    report = Path(cfg.report_dir or cfg.out_dir)
    report.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, dict]] = {}
    out: dict = {}
    t0 = time.time()
    for regime in cfg.regimes:
        for seed in cfg.seeds:
            logger.info("claims: regime %s, seed %d", regime, seed)
            results.setdefault(regime, {})[str(seed)] = run_seed(cfg, regime, seed, presets)
            summary = summarise(results)
            out = {"settings": asdict(cfg), "results": results, "summary": summary,
                   "seconds": round(time.time() - t0, 1)}
            (report / "claims.json").write_text(json.dumps(out, indent=1) + "\n")
            write_table(summary, cfg, report / "claims.md")
            plot_claims(summary, report / "claims.png")
            if cfg.readme:
                update_readme(cfg.readme, summary)
    return out
