"""Generation metrics of UniEmo-Tiny, offline: the score report ``<model>/generation_scores.json``.

The same generation and scoring eval/generate.py and eval/score.py run (``uniemo.generation_plan``,
``uniemo.generation_scores``), with the stand-ins this machine needs (no InceptionV3, AlexNet or ResNet weights
can be fetched here), each labelled in the report:

- FID on tiny-CLIP image embeddings (``fid_feature_extractor="clip"``, reported as ``fid_clip``), reference: the
  real EmoShapes val split per emotion (its statistics cached in ``<work>/fid-reference-cache``);
- LPIPS with lpips' linear layers on a random AlexNet trunk (``lpips_random_trunk``);
- Emo-A with a one-layer probe on tiny-CLIP embeddings of the EmoShapes training split, trained here
  (``uniemo.tiny_judges.train_emo_a_probe``, as train/probe.py ``probe_layers=1`` trains it);
- Sem-C as the CLIP zero-shot variant over the attribute base; Sem-D on tiny-CLIP embeddings.

The generations (``--per-emotion`` fixed seeds per emotion) and, for scale, as many real EmoShapes test images
per emotion are scored the same way.

    python eval/tiny_scores.py --model assets/uniemo-tiny --data-root runs/tiny-world/emoshapes
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="assets/uniemo-tiny", help="the UniEmo-Tiny model folder (with clip/)")
    p.add_argument("--data-root", required=True, help="EmoShapes folder (train/tiny_world.py's emoshapes/)")
    p.add_argument("--clip", default=None, help="tiny CLIP folder (default: <model>/clip)")
    p.add_argument("--work", default="runs/tiny-scores", help="folder for the images, the probe and the scores")
    p.add_argument("--per-emotion", type=int, default=24, help="generated (and real) images per emotion")
    p.add_argument("--out", default=None, help="the report (default: <model>/generation_scores.json)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def export_real(data_root: Path, split: str, per_emotion: int, out: Path, emotions) -> Path:
    """The first ``per_emotion`` images of each of ``emotions`` in ``split``, copied, with the manifest and the
    ``generation.json`` (its ``emotions`` order: the model's, which the Emo-A probe shares) eval/score.py reads."""
    entries = json.loads((data_root / f"{split}.json").read_text())
    if out.exists():
        shutil.rmtree(out)
    chosen = {e: [p for em, p, _ in entries if em == e][:per_emotion] for e in emotions}
    short = {e: len(paths) for e, paths in chosen.items() if len(paths) < per_emotion}
    if short:
        raise ValueError(f"the {split} split has fewer than {per_emotion} images of {short}")
    rows = []
    for emotion, paths in chosen.items():
        for image_path in paths:
            target = out / emotion / Path(image_path).name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(data_root / image_path, target)
            rows.append({"path": f"{emotion}/{target.name}", "emotion": emotion, "kind": "generate"})
    (out / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (out / "generation.json").write_text(json.dumps({"emotions": list(emotions), "source": f"{data_root}:{split}"},
                                                    indent=1) + "\n")
    return out


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)

    from uniemo.generation_plan import generate_folder
    from uniemo.generation_scores import score_folder
    from uniemo.pipeline import UniEmoPipeline
    from uniemo.score_settings import ScoreSettings
    from uniemo.tiny_judges import train_emo_a_probe

    model, root, work = Path(args.model), Path(args.data_root), Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    clip = Path(args.clip) if args.clip else model / "clip"
    attributes = json.loads((model / "attributes.json").read_text())
    names = work / "attribute_names.txt"
    names.write_text("\n".join([*attributes["scenes"], *attributes["objects"]]) + "\n")

    emo_a = train_emo_a_probe(root, clip, work / "emo-a", args.seed)
    if (work / "generated").exists():
        shutil.rmtree(work / "generated")  # never mix in the images of an earlier model
    pipe = UniEmoPipeline.from_pretrained(model, device="auto")
    generation = generate_folder(pipe, work / "generated", model=str(model), per_emotion=args.per_emotion,
                                 seed=args.seed)
    del pipe
    folders = {"generated": work / "generated",
               "real_test_images": export_real(root, "test", args.per_emotion, work / "real",
                                               json.loads((model / "uniemo.json").read_text())["emotions"])}
    report = {"note": (
        f"UniEmo-Tiny generations ({args.per_emotion} fixed seeds per emotion, as eval/generate.py makes them) "
        f"and, for scale, {args.per_emotion} real EmoShapes test images per emotion, scored as eval/score.py "
        "scores them (eval/tiny_scores.py runs both). FID is computed on tiny-CLIP image embeddings "
        "(--fid-feature-extractor clip, reference: the real EmoShapes val split per emotion) because InceptionV3 "
        "weights cannot be obtained offline here; it is labelled fid_clip and is not comparable with Inception "
        "FID. LPIPS uses lpips' AlexNet with a random trunk (the real AlexNet file is unavailable offline), "
        "labelled lpips_random_trunk. Emo-A uses a one-layer probe on tiny-CLIP embeddings of the EmoShapes "
        "training split (probe_layers=1); Sem-C is the CLIP zero-shot variant over the attribute base."),
        "settings": {}, "fid_clip_per_emotion": {}}
    for name, folder in folders.items():
        common = {"clip": str(clip), "seed": args.seed}
        scores = score_folder(folder, ScoreSettings(metrics=("lpips", "emo_a", "sem_c", "sem_d"),
                                                    lpips_random_trunk=True, emo_probe=str(emo_a),
                                                    attribute_names=str(names), **common))
        fid = score_folder(folder, ScoreSettings(metrics=("fid",), fid_feature_extractor="clip",
                                                 reference_from_dataset=f"emoshapes:{root}:val",
                                                 cache_dir=str(work / "fid-reference-cache"), **common))
        for kind, result in (("scores", scores), ("fid", fid)):  # kept beside the images, as eval/score.py would
            (work / f"{kind}-{name}.json").write_text(json.dumps(result, indent=2) + "\n")
        report[name] = {**scores["summary"], "fid_clip": fid["summary"]["fid_clip"]}
        report["fid_clip_per_emotion"][name] = fid["metrics"]["fid"]["per_emotion"]
        report["settings"][name] = {"scores": scores["settings"], "fid": fid["settings"]}
    report["generation"] = generation.get("settings", {})
    out = Path(args.out) if args.out else model / "generation_scores.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: report[k] for k in folders}, indent=1))
    return report


if __name__ == "__main__":
    main()
