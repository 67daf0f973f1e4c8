"""Build UniEmo-Tiny from nothing on a CPU: the synthetic world in which every part of UniEmo runs for real.

docs/method.md section 10. Steps, each seeded and logged to ``<work_dir>/tiny_world.jsonl``:

1. generate EmoShapes (EmoSet's on-disk layout) with ``uniemo.data.emoshapes``;
2. pretrain a tiny CLIP (image and text towers, transformers ``CLIPModel``) contrastively on the captions
   ("a balloon and a cake in a room"), saved like any CLIP folder;
3. pretrain a tiny Stable Diffusion in the diffusers layout on the same captions: the text encoder *is* the
   tiny CLIP's text tower (as SD 1.5's is OpenAI CLIP's), a VAE trained as an autoencoder, a UNet trained
   with the ε-prediction loss (10 % empty captions, for classifier-free guidance); optionally (``text_mix``)
   both towers also see short texts ("a balloon", "balloon", "room") beside the captions;
4. run UniEmo itself through the same scripts a GPU user runs: ``train/understanding.py`` (stage 1; and once
   more without expert queries at the same budget, for the record), ``train/probe.py`` (probe and α),
   ``train/joint.py`` (stage 2 and the emotion space);
5. write the model folder to ``--out`` (``assets/uniemo-tiny`` by default).

Measuring the bundle is ``eval/tiny_report.py``'s job. ``--smoke`` shrinks every step count (a few minutes,
used by CI); the full build at the defaults took 122 minutes on 2 CPU cores, 51 of them for the tiny SD's UNet and 30
for its VAE at 64 px.
``resume=true`` reuses the steps an earlier build in the same work folder finished with the same settings (after
changing only the SD's or stage 2's settings, the data, the CLIP, stage 1 and the probe are kept).

    python -m train.tiny_world --out assets/uniemo-tiny
    python -m train.tiny_world --smoke --out /tmp/uniemo-tiny-smoke
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

from uniemo.config import build_config, load_preset, merge_dicts, overrides_to_dict, parse_config, save_config
from uniemo.model_folder import kept_card, read_manifest, write_manifest
from uniemo.training.checks import check_joint_inputs, check_probe_inputs, check_stage1_inputs
from uniemo.training.joint_config import JointConfig
from uniemo.training.probe_config import ProbeConfig
from uniemo.training.stage1_config import UnderstandingConfig
from uniemo.training.tiny_world_config import TINY_SAMPLER, TinyWorldConfig

logger = logging.getLogger("uniemo.train.tiny_world")
CONFIGS = Path(__file__).parent / "configs"  # the recipes' presets: stage 1, the probe and stage 2 start from them


SMOKE = {
    "world": {"num_train": 160, "num_val": 48, "num_test": 48},
    "clip": {"steps": 30, "batch_size": 32},
    "sd": {"vae_steps": 20, "unet_steps": 30, "vae_batch_size": 16, "unet_batch_size": 16},
    "uniemo": {"stage1_epochs": 2, "stage1_batch_size": 16, "probe_epochs": 5, "joint_steps": 6,
               "joint_batch_size": 8},
}


# what each step's output depends on: its own settings (dotted config keys) and the steps it reads
# (``resume`` compares these; stage 2 is not listed: it always runs)
STEPS = {  # step: (settings, earlier steps it reads)
    "emoshapes": (("seed", "world"), ()),
    "clip": (("clip",), ("emoshapes",)),
    "sd": (("sd",), ("clip",)),
    "stage1": (("uniemo.stage1_epochs", "uniemo.stage1_batch_size"), ("clip",)),
    "stage1_no_queries": (("uniemo.stage1_epochs", "uniemo.stage1_batch_size"), ("clip",)),
    "probe": (("uniemo.probe_epochs",), ("clip",)),
}


def step_signatures(cfg: TinyWorldConfig) -> dict[str, str]:
    """A signature per step: the JSON of its settings and of the steps it reads, recursively. Every step is
    deterministic from these, so an output with the same signature is the output a new run would write."""
    flat, out = asdict(cfg), {}

    def value(key: str):
        section, _, name = key.partition(".")
        return flat[section][name] if name else flat[section]

    for step, (keys, reads) in STEPS.items():
        out[step] = json.dumps({"settings": {k: value(k) for k in keys}, "reads": {r: out[r] for r in reads}},
                               sort_keys=True)
    return out


# ----------------------------------------------------------------------------------------------------------


# A first build's card text; a rebuild keeps the text of the card it replaces (assets/uniemo-tiny's is kept by
# hand: how the bundle was built and tuned, and what eval/tiny_report.py measured).
BUNDLE_INTRO = (
    "A complete UniEmo model (expert-query classifier, fusion mappers, emotion space, α table, and a tiny "
    "Stable Diffusion in the diffusers layout) trained from nothing on a CPU on **EmoShapes**, the project's "
    "procedural synthetic world (images whose emotion is a fixed rule of their scene and objects). It exists so "
    "that the demo, the tests and the whole method run for real on a machine with no GPU and no downloads. It "
    "knows only EmoShapes' scenes and objects; it says nothing about real photographs.")
BUNDLE_MADE = (
    "**How it was made**: `python -m train.tiny_world` (settings in `tiny_world_config.yaml`, timings in "
    "`build.json`): EmoShapes, a tiny CLIP and a tiny Stable Diffusion pretrained on its captions, then UniEmo "
    "stage 1, the emotion probe and α table (`probe/`), stage 2 and the emotion space. `eval/tiny_report.py` "
    "measures it (`report.json`).")


def write_bundle_descriptor(out: Path, kept: dict) -> dict:
    """The bundle's ``uniemo.json`` (stage 2's, with the bundle's recommendations) and model card, both written by
    ``uniemo.model_folder.write_manifest``. ``kept``: what the card of the bundle being replaced held of its own
    (``kept_card``), kept; a first build writes ``BUNDLE_INTRO`` and ``BUNDLE_MADE``."""
    info = read_manifest(out)
    # recommended sampling for this tiny model (uniemo.training.tiny_world_config.TINY_SAMPLER, how it was chosen)
    info["sampler"] = dict(TINY_SAMPLER)
    # EmoShapes has no neutral objects and its SD knows no others: the demo's Transfer tab offers these
    info["transfer_nouns"] = json.loads((out / "attributes.json").read_text())["objects"]
    info["base_models"] = {"clip": "clip/ (tiny CLIP pretrained on EmoShapes captions)",
                           "diffusion": "diffusion/ (tiny Stable Diffusion pretrained on EmoShapes captions)"}
    info["stage1"] = "train/tiny_world.py"
    story = ({"description": kept["description"]} if kept.get("description")
             else {"description": BUNDLE_INTRO, "sections": [BUNDLE_MADE]})
    # no derived table of numbers: eval/tiny_report.py measures the bundle after it is built, and the kept text
    # quotes them
    return write_manifest(out, info, title=kept.get("title", "UniEmo-Tiny"), metrics={}, **story,
                          tags=[*kept.get("tags", []), "synthetic"],
                          datasets=[*kept.get("datasets", []), "EmoShapes"])


def main(argv: list[str] | None = None) -> dict:
    command_line = argv is None  # a bad config there prints the usage and exits 2
    argv = list(sys.argv[1:] if argv is None else argv)
    # --out DIR and --smoke as in docs/api.md; everything else is key=value
    words, i = [], 0
    while i < len(argv):
        if argv[i] == "--out" and i + 1 < len(argv):
            words.append(f"out={argv[i + 1]}")
            i += 2
        elif argv[i] == "--smoke":
            words.append("smoke=true")
            i += 1
        else:
            words.append(argv[i])
            i += 1
    cfg = parse_config(TinyWorldConfig, words, description=__doc__, exit_on_error=command_line)
    if cfg.smoke:  # the SMOKE step counts replace the defaults; key=value words still win over them
        if "--config" in words:
            raise ValueError("--smoke and --config cannot be combined: put smoke: true in the config file instead")
        cfg = build_config(TinyWorldConfig, overrides=merge_dicts(SMOKE, overrides_to_dict(words)))
    return build(cfg)


def build(cfg: TinyWorldConfig) -> dict:
    """Every step of the build, in order (``resume`` reuses finished ones); returns the build summary."""
    # imported only now, so that --help and a bad config answer without loading torch
    import torch

    from uniemo.data.emoshapes import EmoShapesConfig, generate_emoshapes
    from uniemo.training.joint import run_joint
    from uniemo.training.probe_table import run_probe
    from uniemo.training.stage1 import run_stage1
    from uniemo.training.tiny_pretrain import pretrain_clip, pretrain_sd, read_split, write_sample_sheet

    torch.set_num_threads(cfg.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # a smoke run never shares a folder with a full build (it would delete the full build's data)
    work = Path(cfg.work_dir or ("runs/tiny-world-smoke" if cfg.smoke else "runs/tiny-world"))
    work.mkdir(parents=True, exist_ok=True)
    save_config(cfg, work / "config.yaml")
    log_file = work / "tiny_world.jsonl"
    t_start = time.time()

    def log(record: dict) -> None:
        record = {"time": round(time.time() - t_start, 1), **record}
        with log_file.open("a") as f:
            f.write(json.dumps(record) + "\n")

    timings = {}

    signatures = step_signatures(cfg)
    done_file = work / "steps_done.json"
    done = json.loads(done_file.read_text()) if cfg.resume and done_file.is_file() else {}

    def reusable(name) -> bool:
        if done.get(name) != signatures[name]:
            return False
        logger.info("== %s: reused from an earlier build with the same settings", name)
        log({"phase": name, "reused": True})
        return True

    def timed(name):
        class _T:
            def __enter__(self):
                self.t = time.time()
                logger.info("== %s", name)

            def __exit__(self, exc_type, *exc):
                timings[name] = round(time.time() - self.t, 1)
                log({"phase": name, "seconds": timings[name]})
                if exc_type is None and name in signatures:
                    done[name] = signatures[name]
                    done_file.write_text(json.dumps(done, indent=1) + "\n")
        return _T()

    data = work / "emoshapes"
    if not reusable("emoshapes"):
        with timed("emoshapes"):
            if data.exists():
                shutil.rmtree(data)
            w = cfg.world
            generate_emoshapes(data, EmoShapesConfig(num_train=w.num_train, num_val=w.num_val,
                                                     num_test=w.num_test, image_size=w.image_size, seed=cfg.seed,
                                                     label_noise=w.label_noise))
    train_records, val_records = read_split(data, "train"), read_split(data, "val")

    clip_dir, sd_dir = work / "clip", work / "sd"
    if not reusable("clip"):
        with timed("clip"):
            pretrain_clip(cfg.clip, cfg.seed, train_records, val_records, clip_dir, log)
    if not reusable("sd"):
        with timed("sd"):
            pretrain_sd(cfg.sd, cfg.seed, train_records, clip_dir, sd_dir, log)
        write_sample_sheet(sd_dir, val_records, work / "sd_samples.png", cfg.seed)

    # UniEmo itself: the recipes' presets for EmoShapes, with this build's paths and budget on top
    u = cfg.uniemo
    stage1_options = {"data": {"root": str(data)}, "model": {"clip": str(clip_dir)}, "seed": cfg.seed,
                      "epochs": u.stage1_epochs, "batch_size": u.stage1_batch_size}
    if reusable("stage1"):  # its summary is the "final" record of its metrics log
        stage1 = [r["final"] for r in map(json.loads, (work / "stage1" / "metrics.jsonl").read_text().splitlines())
                  if "final" in r][-1]
    else:
        with timed("stage1"):
            stage1 = run_stage1(build_config(UnderstandingConfig, [CONFIGS / "understanding_emoshapes.yaml"],
                                             {**stage1_options, "out_dir": str(work / "stage1")},
                                             [check_stage1_inputs]))
    if cfg.ablation and not reusable("stage1_no_queries"):
        with timed("stage1_no_queries"):
            # the same run but for the queries: the preset's classifier overrides (head width, dropout) are kept,
            # use_queries is added to them (a model.overrides of its own would replace them)
            preset = load_preset(CONFIGS / "understanding_emoshapes.yaml")
            overrides = {**preset.get("model", {}).get("overrides", {}), "use_queries": False}
            run_stage1(build_config(UnderstandingConfig, [CONFIGS / "understanding_emoshapes.yaml"], merge_dicts(
                stage1_options, {"out_dir": str(work / "stage1-no-queries"), "model": {"overrides": overrides}})))
    if not reusable("probe"):
        with timed("probe"):
            run_probe(build_config(ProbeConfig, [CONFIGS / "probe_tiny.yaml"], {
                "data": {"root": str(data), "dataset": "emoshapes"}, "model": {"clip": str(clip_dir)},
                "epochs": u.probe_epochs, "out_dir": str(work / "probe"), "seed": cfg.seed}, [check_probe_inputs]))
    # stage 2 always runs: it writes the model folder
    with timed("joint"):
        joint_options = {"data": {"root": str(data)}, "seed": cfg.seed, "max_steps": u.joint_steps,
                         "batch_size": u.joint_batch_size, "resolution": cfg.sd.resolution,
                         "out_dir": str(work / "joint"),
                         "model": {"stage1": str(work / "stage1" / "final"), "diffusion": str(sd_dir),
                                   "correlation": str(work / "probe")}}
        run_joint(build_config(JointConfig, [CONFIGS / "joint_emoshapes.yaml"],
                               merge_dicts(joint_options, overrides_to_dict(list(u.joint_overrides))),
                               [check_joint_inputs]))

    out = Path(cfg.out)
    kept = kept_card(out)  # the card's own text (the story of the bundle, written by hand) outlives the rebuild
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(work / "joint" / "final", out)
    # The tiny CLIP and its probe travel with the bundle (a few MB): eval/tiny_report.py and the feedback round
    # score generated images with them, as the paper scores with OpenAI CLIP.
    shutil.copytree(clip_dir, out / "clip")
    shutil.copytree(work / "probe" / "probe", out / "probe")
    write_bundle_descriptor(out, kept)
    # the record of how it was made travels with the bundle
    shutil.copy(work / "config.yaml", out / "tiny_world_config.yaml")
    summary = {"stage1": stage1, "timings_seconds": timings, "total_seconds": round(time.time() - t_start, 1),
               "smoke": cfg.smoke, "work_dir": str(work), "out": str(out)}
    (out / "build.json").write_text(json.dumps(summary, indent=2) + "\n")
    log({"phase": "done", **summary})
    return summary


if __name__ == "__main__":
    main()
