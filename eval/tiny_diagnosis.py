"""Where does a UniEmo-Tiny emotion get lost between the emotion space and the image? (uniemo.tiny_diagnosis)

Four measurements on a model folder, each isolating one stage of the generation path: the pipeline's own images,
the tiny SD prompted with EmoShapes captions of the emotion's cells, the condition head on conditions sampled from
the emotion space, and images conditioned on real images of the emotion; and, fifth, which other emotion's
Gaussian mean lies nearest to each emotion's. The bundle's classifier judges every
image; the tiny CLIP reads the (scene, object) cell drawn. Use seeds that took no part in tuning the model.

Usage:
    python eval/tiny_diagnosis.py --model assets/uniemo-tiny --data-root runs/emoshapes-fresh --seed 700 \\
        --per-emotion 24 --out assets/uniemo-tiny/diagnosis.json

``--data-root``: an EmoShapes folder whose test split supplies the real images of measurement 4 (make a fresh one
with another seed: ``python -c "from uniemo.data import generate_emoshapes, EmoShapesConfig; ..."``, or any
EmoShapes build folder). Writes the JSON and prints one table line per emotion.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

logger = logging.getLogger("uniemo.eval.tiny_diagnosis")


def parse_args(argv):
    p = argparse.ArgumentParser(prog="eval/tiny_diagnosis.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a UniEmo-Tiny model folder (with clip/)")
    p.add_argument("--data-root", required=True, help="an EmoShapes folder (its test split: the real images)")
    p.add_argument("--per-emotion", type=int, default=24, help="images per emotion in each measurement")
    p.add_argument("--seed", type=int, default=700, help="base seed (keep it apart from the tuning seeds)")
    p.add_argument("--out", default=None, help="result JSON (default: <model>/diagnosis.json)")
    args = p.parse_args(argv)
    if args.per_emotion < 2:
        p.error("--per-emotion must be at least 2 (one image per cell of the emotion)")
    if not (Path(args.model) / "clip").is_dir():
        p.error(f"{args.model} has no clip/ folder: the diagnosis reads cells with the bundle's tiny CLIP")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    import torch

    from uniemo import UniEmoPipeline
    from uniemo.data import build_dataset
    from uniemo.tiny_diagnosis import (CellJudge, condition_head, from_captions, from_real_images, generated,
                                       nearest_means)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.manual_seed(args.seed)
    model = Path(args.model)
    pipe = UniEmoPipeline.from_pretrained(model)
    judge = CellJudge(model / "clip", pipe.attributes.scenes, pipe.attributes.objects)
    test_set = build_dataset("emoshapes", args.data_root, "test")
    report = {"model": str(model), "data_root": str(args.data_root), "per_emotion": args.per_emotion,
              "seed": args.seed, "sampler": dict(pipe.defaults)}
    logger.info("1/4 the pipeline's images")
    report["generated"] = generated(pipe, judge, args.per_emotion, args.seed)
    logger.info("2/4 the tiny SD on captions")
    report["captions"] = from_captions(pipe, judge, args.per_emotion, args.seed + 10_000)
    logger.info("3/4 the condition head on the emotion space")
    report["condition_head"] = condition_head(pipe, 256, args.seed + 20_000)
    logger.info("4/4 conditions from real images")
    report["from_real_images"] = from_real_images(pipe, test_set, args.per_emotion, args.seed + 30_000)
    report["nearest_means"] = nearest_means(pipe)
    out = Path(args.out) if args.out else model / "diagnosis.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'emotion':12s} {'generated':>9s} {'cell ok':>7s} {'captions':>8s} {'c head':>6s} {'real ref':>8s}  "
          "nearest mean (scene+object)  what the generated images show instead")
    for e in pipe.emotions:
        g, c = report["generated"][e], report["captions"][e]
        real = report["from_real_images"].get(e, {}).get("recognised", float("nan"))
        print(f"{e:12s} {g['recognised']:9.0%} {g['cell_of_the_emotion']:7.0%} {c['recognised']:8.0%} "
              f"{report['condition_head'][e]['recognised']:6.0%} {real:8.0%}  "
              f"{report['nearest_means']['scene_and_object'][e]['nearest']:>12s} "
              f"{report['nearest_means']['scene_and_object'][e]['cosine']:.3f}  {g['classified_as']}")
    return report


if __name__ == "__main__":
    main()
