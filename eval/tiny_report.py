"""Measure the bundled UniEmo-Tiny on EmoShapes and write its report and README figure.

What it measures:

1. classification accuracy on the EmoShapes test split, and, from the same script, the accuracy of the stage-1
   run of the same budget without expert queries (when its folder is given);
2. generated images (``--per-emotion`` fixed seeds per emotion) recognised as their target emotion by the
   bundled classifier and by the emotion probe trained on real EmoShapes images only (tiny CLIP features);
   for scale, images generated with the condition taken from real test images (``generate(e, image=...)``);
3. ``transfer(emotion, noun)`` images showing the requested object, judged by the tiny CLIP zero-shot over
   the object names (texts ``--judge-template``: the bare names by default, "a {}" for a CLIP trained on them);
   for scale, the same judge on real test images (does it name one of the image's objects) and on
   ``neutral(noun)``, the plain tiny SD prompted with the noun alone (the ceiling transfer works under); the
   judge is ``uniemo.tiny_judges.TinyClipJudge``;
4. load time and the latency of classify / generate / transfer / fuse on this machine.

    python eval/tiny_report.py --model assets/uniemo-tiny --data-root runs/tiny-world/emoshapes \\
        --no-queries runs/tiny-world/stage1-no-queries/final --out assets/uniemo-tiny/report.json \\
        --figure assets/uniemo_tiny.png
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

README_START, README_END = "<!-- tiny-report:start -->", "<!-- tiny-report:end -->"


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="assets/uniemo-tiny", help="the bundled model folder")
    p.add_argument("--data-root", required=True, help="EmoShapes folder (train/tiny_world.py's emoshapes/)")
    p.add_argument("--no-queries", help="stage-1 model folder trained without expert queries (same budget)")
    p.add_argument("--fresh-root", help="another EmoShapes folder, generated with another seed (python -m "
                                        "uniemo.data.emoshapes --seed 424242 ...): classification on its test split")
    p.add_argument("--clip", help="tiny CLIP folder (default: <model>/clip)")
    p.add_argument("--probe", help="emotion probe folder (default: <model>/probe)")
    p.add_argument("--per-emotion", type=int, default=16, help="generated images per emotion (fixed seeds)")
    p.add_argument("--transfer-seeds", type=int, default=4, help="seeds per (emotion, noun) for transfer")
    p.add_argument("--judge-template", default="{}",
                   help='zero-shot text per object name ({} = the name; "a {}" suits a CLIP trained on short '
                        'texts)')
    p.add_argument("--out", default=None, help="report JSON (default: <model>/report.json)")
    p.add_argument("--figure", default=None, help="README figure PNG: EmoShapes samples and generated images")
    p.add_argument("--readme", default=None, help="a README whose tiny-report block to regenerate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--transfer-seed", type=int, default=None,
                   help="first seed of the transfer images (default: --seed); other seeds than the ones a sampler "
                        "setting such as noun_guidance_scale was chosen on")
    return p.parse_args(argv)


def render_markdown(report: dict) -> str:
    """The README table, generated from the report (never typed by hand)."""
    c, g, t, lat = report["classification"], report["generation"], report["transfer"], report["latency_seconds"]
    pct = lambda v: f"{100 * v:.1f} %"  # noqa: E731
    rows = [
        ("Classification, EmoShapes test split (top-1)", pct(c["test_top1"]), "chance 12.5 %"),
        *([(f"... on a freshly generated EmoShapes test set (seed {c['fresh_set_seed']}, {c['fresh_set_images']} "
            "images)", pct(c["fresh_set_top1"]), "images drawn with another seed, never seen")] if "fresh_set_top1" in c else []),
        ("Same budget without expert queries (top-1)", pct(c["test_top1_without_expert_queries"])
         if "test_top1_without_expert_queries" in c else "not measured", "stage 1 with use_queries=false"),
        (f"Generated images recognised as their emotion, by the bundled classifier ({g['per_emotion']} seeds "
         "per emotion)", pct(g["recognised_by_classifier"]), "chance 12.5 %"),
        ("... by the emotion probe trained on real EmoShapes images only", pct(g["recognised_by_probe"]),
         f"the probe scores {pct(g['probe_accuracy_on_real_test_images'])} on real test images"),
        ("... when the condition comes from a real test image instead of the emotion space (classifier)",
         pct(g["recognised_from_reference_images"]) if "recognised_from_reference_images" in g else "not measured",
         f"{g.get('reference_images_per_emotion', 0)} images per emotion; generate(emotion, image=...)"),
        ("transfer(emotion, noun) shows the requested object (tiny CLIP zero-shot)", pct(t["object_recognised"]),
         f"chance {pct(t['chance'])}" + (f"; the plain tiny SD prompted with the noun: "
                                         f"{pct(t['neutral_object_recognised'])}; the judge names an object of "
                                         f"real test images {pct(t['judge_accuracy_on_real_test_images'])}"
                                         if "neutral_object_recognised" in t else "")),
        ("... and still carries the target emotion (bundled classifier)",
         pct(t["emotion_recognised_by_classifier"]) if "emotion_recognised_by_classifier" in t else "not measured",
         "chance 12.5 %" + (f"; {pct(t['emotion_recognised_where_the_rule_allows_it'])} for the pairs that some "
                            "scene makes that emotion with the noun, "
                            f"{pct(t['emotion_recognised_where_the_rule_forbids_it'])} for the others"
                            if t.get("emotion_recognised_where_the_rule_allows_it") is not None else "")
         + (f"; guidance {report['sampler'].get('transfer_guidance_scale', report['sampler']['guidance_scale'])}"
            f", noun guidance {report['sampler']['noun_guidance_scale']}"
            if report["sampler"].get("noun_guidance_scale") is not None else "")),
        ("Load the bundle", f"{lat['load']:.2f} s", "offline, 2 CPU cores" + (
            f"; load average {lat['load_average']:.1f} when the latencies were taken" if "load_average" in lat
            else "")),
        ("classify / generate / transfer / fuse (one image)",
         f"{lat['classify']:.3f} / {lat['generate']:.2f} / {lat['transfer']:.2f} / {lat['fuse']:.2f} s",
         f"{report['sampler']['num_inference_steps']} {report['sampler']['scheduler']} steps"),
    ]
    lines = ["| measured on the bundled UniEmo-Tiny | value | note |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {n} |" for a, b, n in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    import torch

    from uniemo import UniEmoPipeline
    from uniemo import tiny_measures as measures
    from uniemo.data import build_dataset
    from uniemo.figures import real_and_generated_grid
    from uniemo.probe import EmotionProbe
    from uniemo.readme_block import replace_block
    from uniemo.tiny_judges import TinyClipJudge
    from uniemo.understanding_eval import evaluate

    model_dir = Path(args.model)
    out = Path(args.out) if args.out else model_dir / "report.json"
    report: dict = {"model": str(model_dir), "data_root": str(args.data_root), "machine": {
        "cpu_threads": torch.get_num_threads(), "python": platform.python_version(), "torch": torch.__version__}}

    # 1. classification accuracy on the test split (and the same budget without expert queries)
    acc = evaluate(model_dir, "emoshapes", args.data_root, "test")
    report["classification"] = {"test_top1": acc["top1"], "test_top5": acc["metrics"]["top5"],
                                "per_class": acc["metrics"]["per_class_accuracy"], "num_images": acc["num_images"],
                                "chance": 1 / 8}
    if args.no_queries:
        ablation = evaluate(args.no_queries, "emoshapes", args.data_root, "test")
        report["classification"]["test_top1_without_expert_queries"] = ablation["top1"]
    if args.fresh_root:
        fresh = evaluate(model_dir, "emoshapes", args.fresh_root, "test")
        fresh_seed = json.loads((Path(args.fresh_root) / "emoshapes.json").read_text())["config"]["seed"]
        report["classification"].update(fresh_set_top1=fresh["top1"], fresh_set_seed=fresh_seed,
                                        fresh_set_images=fresh["num_images"])

    # 4a. load time
    t0 = time.perf_counter()
    pipe = UniEmoPipeline.from_pretrained(model_dir)
    report["latency_seconds"] = {"load": round(time.perf_counter() - t0, 3)}
    emotions = pipe.emotions
    report["sampler"] = dict(pipe.defaults)

    clip_dir = Path(args.clip) if args.clip else model_dir / "clip"
    probe_dir = Path(args.probe) if args.probe else model_dir / "probe"
    objects = list(pipe.attributes.objects)
    judge = TinyClipJudge(clip_dir, objects, args.judge_template)
    probe = measures.probe_judge(EmotionProbe.from_pretrained(probe_dir).eval(), judge.embed)
    classifier = measures.classify_judge(pipe)

    # 2. generated images recognised as their target emotion
    report["generation"], generated, timings = measures.generation_recognised(
        pipe, {"classifier": classifier, "probe": probe}, args.per_emotion, args.seed)
    # for reference: the probe on real test images (how good a judge it is)
    test_set = build_dataset("emoshapes", args.data_root, "test")
    real = measures.sample_real(test_set)
    report["generation"]["probe_accuracy_on_real_test_images"] = measures.judge_accuracy(probe, real)
    # for scale: the condition taken from a real test image's own features ("a reference image")
    per_class = max(1, args.per_emotion // 4)
    report["generation"]["recognised_from_reference_images"] = measures.recognised_from_reference(
        pipe, real, per_class, args.seed)
    report["generation"]["reference_images_per_emotion"] = per_class

    # 3. transfer shows the requested object (tiny CLIP zero-shot over the object names) and carries the emotion
    transfer_seed = args.seed if args.transfer_seed is None else args.transfer_seed
    transfer, transfer_times = measures.transfer_measures(pipe, judge, objects, {"classifier": classifier},
                                                          args.transfer_seeds, transfer_seed)
    by_classifier = transfer["emotion_by_judge"]["classifier"]
    report["transfer"] = {**transfer, "emotion_recognised_by_classifier": by_classifier["all"],
                          "emotion_recognised_where_the_rule_allows_it": by_classifier["allowed"],
                          "emotion_recognised_where_the_rule_forbids_it": by_classifier["forbidden"],
                          "judge_template": args.judge_template,
                          "judge_accuracy_on_real_test_images": measures.object_judge_on_real(judge, objects, real),
                          "neutral_object_recognised": measures.neutral_object_recognised(
                              pipe, judge, objects, args.transfer_seeds, transfer_seed)}

    # 4b. latencies of single calls (the median of repeats); the load average says whether anything else
    # shared the CPU
    lat = report["latency_seconds"]
    lat.update(measures.latencies(pipe, test_set[0]["pixel_values"], objects[0],
                                  {"generate": timings, "transfer": transfer_times}))

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    if args.figure:
        real_and_generated_grid(args.figure, first_images(test_set, emotions, 3), generated, emotions)
    if args.readme:
        replace_block(args.readme, README_START, README_END, render_markdown(report))
    print(json.dumps({k: report[k] for k in ("classification", "generation", "transfer")}, indent=1)[:2000])
    return report


def first_images(dataset, emotions, n: int) -> dict[str, list]:
    """The first ``n`` images of each emotion in ``dataset`` (the real row of the README figure)."""
    real = {e: [] for e in emotions}
    for i, entry in enumerate(dataset.entries):
        e = emotions[entry.label]
        if len(real[e]) < n:
            real[e].append(dataset[i]["pixel_values"])
    return real


if __name__ == "__main__":
    main()
