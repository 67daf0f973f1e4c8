"""One offline round of explicit feedback (paper III-C, Algorithm 1; docs/method.md section 7): generate ->
score -> filter -> write a manifest. ``run_feedback_round`` is the round; its command line is
``train/feedback.py``, and stage 2 (``uniemo.training.joint.run_joint`` with ``feedback.manifest``) then
continues on the mix of real and kept images.

1. generate M candidates per emotion with the trained model (``uniemo.generation_plan``, fixed seeds
   S + 1000·index(e) + i, written to ``out_dir/candidates/``);
2. score each candidate from its CLIP features: P_emo, the α probe's probability of the intended emotion
   (``train/probe.py``'s ``<probe>/probe/``, with the CLIP it was trained on), and S_sem, the highest
   zero-shot CLIP probability over the model's attribute base (``uniemo.scoring``);
3. keep the candidates inside the [η %, δ %) rank band of both scores (``uniemo.filtering.select_feedback``;
   bands per emotion by default);
4. write ``out_dir/manifest.jsonl`` (the kept images, intended emotion as label) and ``out_dir/feedback.json``
   (every candidate's scores and whether it was kept, counts per emotion, settings).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch

from uniemo.attributes import AttributeTargets
from uniemo.config import save_config
from uniemo.data.feedback import MANIFEST_NAME, read_manifest
from uniemo.filtering import select_feedback
from uniemo.generation_plan import generate_folder
from uniemo.pipeline import UniEmoPipeline
from uniemo.scoring import ImageScorer
from uniemo.training.feedback_round_config import FeedbackRoundConfig

logger = logging.getLogger(__name__)
CANDIDATES_DIR = "candidates"


def run_feedback_round(cfg: FeedbackRoundConfig) -> dict:
    """Run one round into ``cfg.out_dir``; returns the summary (also in feedback.json)."""
    cfg.validate()
    t0 = time.time()
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out_dir / "config.yaml")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device

    # 1. Candidates: M per emotion, fixed seeds (resumable: existing images are kept)
    candidates = out_dir / CANDIDATES_DIR
    pipe = UniEmoPipeline.from_pretrained(cfg.model, device=device)
    generation = generate_folder(pipe, candidates, model=cfg.model, per_emotion=cfg.per_emotion, seed=cfg.seed,
                                 steps=cfg.steps, guidance=cfg.guidance, scheduler=cfg.scheduler, size=cfg.size,
                                 batch_size=cfg.batch_size)
    del pipe  # the scorer's CLIP takes its place in memory
    emotions = generation["emotions"]
    records = [r for r in read_manifest(candidates) if r["kind"] == "generate"]

    # 2. Scores from CLIP features: P_emo (α probe, intended emotion) and S_sem (zero-shot over the attributes)
    attributes = AttributeTargets.load(cfg.model)
    scorer = ImageScorer.from_probe_run(cfg.probe, attributes.scenes, attributes.objects, device=device,
                                        clip=cfg.clip, batch_size=cfg.score_batch_size)
    if tuple(scorer.emotions) != tuple(emotions):
        raise ValueError(f"the probe's emotions {scorer.emotions} differ from the model's {tuple(emotions)}")
    intended = [emotions.index(r["emotion"]) for r in records]
    scores = scorer.feedback_scores([r["path"] for r in records], intended, progress="score candidates")

    # 3. Algorithm 1: inside the [η, δ) band of both rankings
    kept = select_feedback(scores["emotion_score"], scores["semantic_score"], cfg.eta, cfg.delta,
                           groups=intended if cfg.bands == "per_emotion" else None)
    kept_set = set(kept)

    # 4. Manifest of the kept images (paths relative to out_dir) and the record of every candidate
    rows = []
    for i, record in enumerate(records):
        relative = Path(record["path"]).relative_to(candidates).as_posix()  # read_manifest joined candidates/
        rows.append({"path": f"{CANDIDATES_DIR}/{relative}", "kind": "generate", "emotion": record["emotion"],
                     "seed": record["seed"], "index": record["index"],
                     "emotion_score": float(scores["emotion_score"][i]),
                     "semantic_score": float(scores["semantic_score"][i]),
                     "predicted": emotions[int(scores["predicted"][i])], "kept": i in kept_set})
    (out_dir / MANIFEST_NAME).write_text("".join(json.dumps({k: v for k, v in row.items() if k != "kept"}) + "\n"
                                                 for row in rows if row["kept"]))
    per_emotion = {e: {"candidates": sum(1 for r in rows if r["emotion"] == e),
                       "kept": sum(1 for r in rows if r["emotion"] == e and r["kept"])} for e in emotions}
    emotion_score = scores["emotion_score"].double()
    summary = {
        "model": cfg.model,
        "probe": cfg.probe,
        "num_candidates": len(rows),
        "num_kept": len(kept),
        "kept_fraction": len(kept) / max(1, len(rows)),
        "per_emotion": per_emotion,
        "mean_emotion_score": {"all": emotion_score.mean().item(),
                               "kept": emotion_score[kept].mean().item() if kept else None},
        "probe_accuracy_on_candidates": (scores["predicted"] == torch.tensor(intended)).double().mean().item(),
        "band": {"eta": cfg.eta, "delta": cfg.delta, "bands": cfg.bands,
                 "rule": "kept iff floor(n*eta/100) <= rank < floor(n*delta/100) in both rankings "
                         "(rank 0 = highest score, ties by input order)"},
        "generation": generation["settings"],
        "manifest": str(out_dir / MANIFEST_NAME),
        "seconds": round(time.time() - t0, 2),
    }
    (out_dir / "feedback.json").write_text(json.dumps({**summary, "candidates": rows}, indent=2) + "\n")
    logger.info("kept %d of %d candidates (%.1f %%); manifest %s", len(kept), len(rows),
                100 * summary["kept_fraction"], summary["manifest"])
    return summary

