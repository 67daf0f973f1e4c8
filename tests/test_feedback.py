"""Explicit feedback: generated images as records (uniemo.data.feedback), their mix with real data, the masked
generation losses in joint_step, train/feedback.py end to end, and stage 2 continuing on the mix."""

import json

import pytest
import torch
from PIL import Image

from uniemo.constants import EMOTIONS
from uniemo.data.base import EmotionDataset, ImageEntry, collate_records
from uniemo.data.feedback import FeedbackDataset, MixedDataset, generated_slots
from uniemo.filtering import select_feedback


def _manifest(tmp_path, kinds=("generate", "generate", "transfer", "fusion")):
    lines = []
    for i, kind in enumerate(kinds):
        emotion = EMOTIONS[i % len(EMOTIONS)]
        (tmp_path / "img").mkdir(exist_ok=True)
        Image.new("RGB", (8, 8), (30 * i, 0, 0)).save(tmp_path / "img" / f"{i}.png")
        lines.append(json.dumps({"path": f"img/{i}.png", "kind": kind, "emotion": emotion, "seed": i}))
    (tmp_path / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path / "manifest.jsonl"


def test_feedback_records_carry_the_intended_emotion_and_no_attributes(tmp_path):
    manifest = _manifest(tmp_path)
    ds = FeedbackDataset.from_manifest(manifest, transform=lambda im: torch.zeros(3, 4, 4))
    assert len(ds) == 3  # the two-emotion fusion image has no single label and is left out
    assert [e.label for e in ds.entries] == [0, 1, 2]
    records = [ds[i] for i in range(len(ds))]
    assert all(r["generated"] and r["scene"] is None and r["objects"] == [] for r in records)
    batch = collate_records(records)
    assert batch["generated"].tolist() == [True] * 3 and batch["labels"].tolist() == [0, 1, 2]
    # the attribute targets of generated rows are missing (-1), so L_S / L_O mask them
    from uniemo.attributes import AttributeTargets

    targets = AttributeTargets(["sky"], ["cake"], torch.eye(2)[:1], torch.eye(2)[1:])
    scene_ids, object_ids, _, _ = targets.batch(batch["scene"], batch["objects"], torch.Generator(), "cpu")
    assert scene_ids.tolist() == [-1] * 3 and object_ids.tolist() == [-1] * 3
    # the folder holding the manifest works too, and an unknown emotion names the file
    assert len(FeedbackDataset.from_manifest(tmp_path)) == 3
    (tmp_path / "bad.jsonl").write_text(json.dumps({"path": "img/0.png", "emotion": "joy"}) + "\n")
    with pytest.raises(ValueError, match="joy"):
        FeedbackDataset.from_manifest(tmp_path / "bad.jsonl")


def test_mixing_gives_the_generated_images_their_share(tmp_path):
    manifest = _manifest(tmp_path, kinds=["generate"] * 5)
    real_paths = []
    for i in range(192):
        real_paths.append(str(tmp_path / "img" / f"{i % 5}.png"))
    real = EmotionDataset([ImageEntry(p, i % 8, scene="sky", objects=["cake"]) for i, p in enumerate(real_paths)],
                          EMOTIONS)
    generated = FeedbackDataset.from_manifest(manifest)
    mixed = MixedDataset(real, generated, proportion=0.2, seed=0)
    assert generated_slots(192, 0.2) == 48 and len(mixed) == 240
    assert mixed.generated_share() == pytest.approx(0.2)
    flags = [mixed[i]["generated"] for i in range(len(mixed))]
    assert flags == [False] * 192 + [True] * 48  # every real image stays
    # 5 images fill 48 slots in turn: each appears 9 or 10 times
    counts = {}
    for i in range(192, 240):
        counts[mixed[i]["path"]] = counts.get(mixed[i]["path"], 0) + 1
    assert sorted(counts.values()) == [9, 9, 10, 10, 10]
    assert len(MixedDataset(real, generated, proportion=0.0)) == 192
    for p in (0.05, 0.1, 0.3):
        share = MixedDataset(real, generated, proportion=p).generated_share()
        assert abs(share - p) < 1 / 192


def test_joint_step_keeps_generated_rows_out_of_the_generation_losses(learnable_emoset, tiny_stage1_dir, tiny_sd_dir,
                                                                     tiny_correlation_dir, tmp_path):
    import diffusers

    from train import joint
    from uniemo.config import parse_config
    from uniemo.training import stage2
    from uniemo.training.joint_config import JointConfig
    from uniemo.data import build_dataset

    cfg = parse_config(JointConfig, ["--preset", "tiny", f"data.root={learnable_emoset}",
                                            f"model.stage1={tiny_stage1_dir}", f"model.diffusion={tiny_sd_dir}",
                                            f"model.correlation={tiny_correlation_dir}", f"out_dir={tmp_path}"],
                             presets=joint.PRESETS)
    classifier, attributes, correlation, fusion, pipe, pid = stage2.load_components(cfg, "cpu")
    stage2.set_trainable(classifier, fusion, pipe.unet, cfg.model)
    models = {"joint": stage2.UnderstandingAndFusion(classifier, fusion, correlation).eval(), "vae": pipe.vae,
              "unet": pipe.unet, "text_encoder": pipe.text_encoder, "tokenizer": pipe.tokenizer,
              "noise_scheduler": diffusers.DDPMScheduler.from_config(pipe.scheduler.config), "placeholder_id": pid,
              "attributes": attributes, "weight_dtype": torch.float32, "prompt": "<emotion>"}
    ds = build_dataset("emoset", learnable_emoset, "train", stage2.JointTransform(32, False))
    batch = collate_records([ds[i] for i in (0, 30, 60, 90)])

    def terms(b):
        torch.manual_seed(0)  # the VAE's latent sample draws from the global RNG
        out = stage2.joint_step(models, b, cfg, torch.Generator().manual_seed(0))
        return {k: f().item() for k, f in out.items()}

    # rows 1 and 3 play generated images: flagged, and without attributes like every generated record
    mixed = dict(batch, generated=torch.tensor([False, True, False, True]),
                 scene=[batch["scene"][0], None, batch["scene"][2], None],
                 objects=[batch["objects"][0], [], batch["objects"][2], []])
    real_only = {k: (v[[0, 2]] if isinstance(v, torch.Tensor) else [v[0], v[2]] if isinstance(v, list) else v)
                 for k, v in batch.items()}
    # the generation losses of the mixed batch are those of its real rows alone (same noise draws)
    got, want = terms(mixed), terms(real_only)
    assert got["diffusion"] == pytest.approx(want["diffusion"], rel=1e-5)
    assert got["condition"] == pytest.approx(want["condition"], rel=1e-5)
    # ... while the understanding loss sees all four rows
    assert got["understanding"] != pytest.approx(want["understanding"])
    everything = terms(dict(batch, generated=torch.ones(4, dtype=torch.bool)))
    assert everything["diffusion"] == 0.0 and everything["condition"] == 0.0 and everything["understanding"] > 0


def test_feedback_round_then_joint_continues_on_the_mix(tiny_model_dir, tiny_correlation_dir, learnable_emoset,
                                                        tmp_path):
    from train import feedback, joint
    from uniemo.config import parse_config
    from uniemo.training import stage2
    from uniemo.training.joint_config import JointConfig

    out = tmp_path / "round"
    summary = feedback.main(["--preset", "tiny", f"model={tiny_model_dir}", f"probe={tiny_correlation_dir}",
                             f"out_dir={out}", "per_emotion=3", "steps=2", "batch_size=16"])
    assert summary["num_candidates"] == 24
    # 3 per emotion: each ranking keeps ranks 0-1, so 1 or 2 per emotion lie in both bands
    assert all(1 <= v["kept"] <= 2 for v in summary["per_emotion"].values())
    kept = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(kept) == summary["num_kept"] and all((out / r["path"]).is_file() for r in kept)
    # the kept set is exactly Algorithm 1 on the recorded scores
    rows = json.loads((out / "feedback.json").read_text())["candidates"]
    intended = [EMOTIONS.index(r["emotion"]) for r in rows]
    expected = select_feedback([r["emotion_score"] for r in rows], [r["semantic_score"] for r in rows], 20, 80,
                               groups=intended)
    assert [i for i, r in enumerate(rows) if r["kept"]] == expected
    assert {r["path"] for r in kept} == {rows[i]["path"] for i in expected}

    # stage 2 continues from the model folder on the mix (p = 0.2 of the mixed set)
    run = tmp_path / "joint"
    common = ["--preset", "tiny", f"data.root={learnable_emoset}", f"model.stage1={tiny_model_dir}",
              f"model.init_fusion={tiny_model_dir}", f"model.correlation={tiny_model_dir}",
              f"model.diffusion={tiny_model_dir / 'diffusion'}", "validation_every=0",
              f"feedback.manifest={out / 'manifest.jsonl'}", "feedback.proportion=0.2"]
    result = joint.main(common + [f"out_dir={run}", "max_steps=2"])
    assert result["feedback"]["generated_slots"] == generated_slots(192, 0.2)
    assert result["feedback"]["generated_share"] == pytest.approx(0.2, abs=0.01)
    assert result["num_train_items"] == 192 + generated_slots(192, 0.2)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(torch.isfinite(torch.tensor(r["train/loss_total"])) for r in records if "train/loss_total" in r)
    assert (run / "final" / "uniemo.json").is_file()
    # the mappers started from the model's own, not from a fresh init
    cfg = parse_config(JointConfig, common + [f"out_dir={run}"], presets=joint.PRESETS)
    fusion = stage2.load_components(cfg, "cpu")[3]
    from uniemo.fusion import EmoFusion

    reference = EmoFusion.from_pretrained(tiny_model_dir / "fusion")
    assert all(torch.equal(a, b) for a, b in zip(fusion.state_dict().values(), reference.state_dict().values()))
