"""Measure the bundled EmoSym-Tiny on EmoShapes, side by side with UniEmo-Tiny, and write its report.

The same measurements as ``eval/tiny_report.py`` (``uniemo.tiny_measures``), on the same seeds, with judges that
do not depend on the model measured: UniEmo-Tiny's bundled classifier and the emotion probe trained on real
EmoShapes images only; EmoSym-Tiny's own [EMO] head is reported beside them. UniEmo-Tiny's figures are read from
its ``report.json``, which must have been measured on the same seeds (checked).

1. classification top-1 on the EmoShapes test split (and on a fresh set made with another seed);
2. the reward step's effect: test top-1 before and after step 2 over the build's seeds (its ``build.json``);
3. generated images recognised as their emotion (``--per-emotion`` seeds per emotion);
4. transfer: the noun shown (tiny CLIP zero-shot) and the emotion carried, split by whether the rule allows it;
5. load time and latencies.

    python eval/emosym_report.py --model assets/emosym-tiny --uniemo assets/uniemo-tiny \\
        --data-root runs/tiny-world/emoshapes --fresh-root /tmp/emoshapes-fresh --transfer-seed 100 \\
        --judge-template "a {}" --readme README.md
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

README_START, README_END = "<!-- emosym-report:start -->", "<!-- emosym-report:end -->"


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="assets/emosym-tiny", help="the EmoSym-Tiny bundle")
    p.add_argument("--uniemo", default="assets/uniemo-tiny",
                   help="the UniEmo-Tiny bundle: its classifier judges, its tiny CLIP and probe, its report.json")
    p.add_argument("--data-root", required=True, help="EmoShapes folder (train/tiny_world.py's emoshapes/)")
    p.add_argument("--fresh-root", help="another EmoShapes folder, generated with another seed")
    p.add_argument("--per-emotion", type=int, default=16, help="generated images per emotion (fixed seeds)")
    p.add_argument("--transfer-seeds", type=int, default=4, help="seeds per (emotion, noun) for transfer")
    p.add_argument("--judge-template", default="a {}", help="zero-shot text per object name ({} = the name)")
    p.add_argument("--out", default=None, help="report JSON (default: <model>/report.json)")
    p.add_argument("--readme", default=None, help="a README whose emosym-report block to regenerate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--transfer-seed", type=int, default=None, help="first seed of the transfer images "
                                                                    "(default: --seed)")
    return p.parse_args(argv)


def check_same_seeds(uniemo_report: dict, args) -> None:
    """UniEmo-Tiny's report must come from the seeds this one uses, or the table would compare unlike things."""
    transfer_seed = args.seed if args.transfer_seed is None else args.transfer_seed
    theirs = (uniemo_report["generation"]["per_emotion"], uniemo_report["transfer"]["seeds_per_pair"],
              uniemo_report["transfer"]["first_seed"])
    ours = (args.per_emotion, args.transfer_seeds, transfer_seed)
    if theirs != ours:
        raise ValueError(f"UniEmo-Tiny's report.json was measured with (per-emotion, transfer seeds, first "
                         f"transfer seed) {theirs}, this report asks for {ours}: pass the same, or regenerate that "
                         "report")


def render_markdown(report: dict, uniemo: dict) -> str:
    """The side-by-side README table, generated from the two reports (never typed by hand)."""
    pct = lambda v: "not measured" if v is None else f"{100 * v:.1f} %"  # noqa: E731
    c, g, t, lat = report["classification"], report["generation"], report["transfer"], report["latency_seconds"]
    uc, ug, ut, ul = (uniemo[k] for k in ("classification", "generation", "transfer", "latency_seconds"))
    effect = report.get("reward_effect")
    seconds = lambda d: (f"{d['load']:.2f} / {d['classify']:.3f} / {d['generate']:.2f} / "  # noqa: E731
                         f"{d['transfer']:.2f} / {d['fuse']:.2f}")
    worst = lambda d: f"{100 * min(d.values()):.0f} % ({min(d, key=d.get)})"  # noqa: E731
    rows = [
        ("Classification, EmoShapes test split (top-1)", pct(uc["test_top1"]), pct(c["test_top1"])),
        *([("... on a freshly generated set (seed "
            f"{c['fresh_set_seed']})", pct(uc.get("fresh_set_top1")), pct(c["fresh_set_top1"]))]
          if "fresh_set_top1" in c else []),
        *([(f"EmoSym: test top-1 before / after the reward step, mean ± std over seeds "
            f"{', '.join(map(str, effect['seeds']))}", "",
            f"{pct(effect['before']['mean'])} ± {100 * (effect['before']['std'] or 0):.1f} / "
            f"{pct(effect['after']['mean'])} ± {100 * (effect['after']['std'] or 0):.1f} "
            f"(difference {100 * effect['difference']['mean']:+.1f} ± "
            f"{100 * (effect['difference']['std'] or 0):.1f} points)")] if effect else []),
        (f"Generated images recognised as their emotion by UniEmo-Tiny's classifier ({g['per_emotion']} seeds per "
         "emotion)", pct(ug["recognised_by_classifier"]), pct(g["recognised_by_uniemo_classifier"])),
        ("... lowest single emotion", worst(ug["per_emotion_by_classifier"]),
         worst(g["per_emotion_by_uniemo_classifier"])),
        ("... by the emotion probe trained on real images only", pct(ug["recognised_by_probe"]),
         pct(g["recognised_by_probe"])),
        ("... by the model's own classifier", pct(ug["recognised_by_classifier"]),
         pct(g["recognised_by_classifier"])),
        ("transfer(emotion, noun) shows the noun (tiny CLIP zero-shot)", pct(ut["object_recognised"]),
         pct(t["object_recognised"])),
        ("... carries the emotion where the rule allows the pair (UniEmo-Tiny's classifier)",
         pct(ut["emotion_recognised_where_the_rule_allows_it"]),
         pct(t["emotion_by_judge"]["uniemo_classifier"]["allowed"])),
        ("Load / classify / generate / transfer / fuse (s, 2 CPU cores)", seconds(ul), seconds(lat)),
    ]
    lines = ["| measured on the bundles, same seeds | UniEmo-Tiny | EmoSym-Tiny |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {n} |" for a, b, n in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    # heavy imports after argument parsing, so --help answers at once
    import torch

    from uniemo import UniEmoPipeline
    from uniemo import tiny_measures as measures
    from uniemo.data import build_dataset
    from uniemo.emosym.accuracy import emosym_accuracy
    from uniemo.emosym.pipeline import EmoSymPipeline
    from uniemo.probe import EmotionProbe
    from uniemo.readme_block import replace_block
    from uniemo.tiny_judges import TinyClipJudge

    model_dir, uniemo_dir = Path(args.model), Path(args.uniemo)
    uniemo_report = json.loads((uniemo_dir / "report.json").read_text())
    check_same_seeds(uniemo_report, args)
    out = Path(args.out) if args.out else model_dir / "report.json"
    report: dict = {"model": str(model_dir), "beside": str(uniemo_dir), "data_root": str(args.data_root),
                    "machine": {"cpu_threads": torch.get_num_threads(), "python": platform.python_version(),
                                "torch": torch.__version__}}

    # 1. classification, and 2. the reward step's effect as the build measured it
    acc = emosym_accuracy(model_dir, "emoshapes", args.data_root, "test")
    report["classification"] = {"test_top1": acc["top1"], "per_class": acc["per_class"],
                                "num_images": acc["num_images"], "chance": 1 / 8}
    if args.fresh_root:
        fresh = emosym_accuracy(model_dir, "emoshapes", args.fresh_root, "test")
        seed = json.loads((Path(args.fresh_root) / "emoshapes.json").read_text())["config"]["seed"]
        report["classification"].update(fresh_set_top1=fresh["top1"], fresh_set_seed=seed,
                                        fresh_set_images=fresh["num_images"])
    build = model_dir / "build.json"
    if build.is_file():
        report["reward_effect"] = json.loads(build.read_text()).get("reward_effect")

    t0 = time.perf_counter()
    pipe = EmoSymPipeline.from_pretrained(model_dir)
    report["latency_seconds"] = {"load": round(time.perf_counter() - t0, 3)}
    report["sampler"] = dict(pipe.defaults)
    uniemo = UniEmoPipeline.from_pretrained(uniemo_dir)
    if tuple(uniemo.emotions) != tuple(pipe.emotions):
        raise ValueError(f"the two bundles' emotions differ: {uniemo.emotions} and {pipe.emotions}")
    objects = list(uniemo.attributes.objects)
    judge = TinyClipJudge(uniemo_dir / "clip", objects, args.judge_template)
    probe = measures.probe_judge(EmotionProbe.from_pretrained(uniemo_dir / "probe").eval(), judge.embed)
    judges = {"classifier": measures.classify_judge(pipe), "uniemo_classifier": measures.classify_judge(uniemo)}

    # 3. generation
    report["generation"], _, timings = measures.generation_recognised(pipe, {**judges, "probe": probe},
                                                                      args.per_emotion, args.seed)
    test_set = build_dataset("emoshapes", args.data_root, "test")
    real = measures.sample_real(test_set)
    per_class = max(1, args.per_emotion // 4)
    report["generation"]["recognised_from_reference_images"] = measures.recognised_from_reference(
        pipe, real, per_class, args.seed)
    report["generation"]["reference_images_per_emotion"] = per_class

    # 4. transfer
    transfer_seed = args.seed if args.transfer_seed is None else args.transfer_seed
    report["transfer"], transfer_times = measures.transfer_measures(pipe, judge, objects, judges,
                                                                    args.transfer_seeds, transfer_seed)
    report["transfer"]["judge_template"] = args.judge_template

    # 5. latencies
    report["latency_seconds"].update(measures.latencies(pipe, test_set[0]["pixel_values"], objects[0],
                                                        {"generate": timings, "transfer": transfer_times}))

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    if args.readme:
        replace_block(args.readme, README_START, README_END, render_markdown(report, uniemo_report))
    print(render_markdown(report, uniemo_report))
    return report


if __name__ == "__main__":
    main()
