"""Stage 2: gradient routing, a tiny run with resume, and the emotion space across processes."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from train import joint
from uniemo.config import parse_config
from uniemo.training import stage2
from uniemo.training.joint_config import JointConfig
from uniemo.emotion_space import EmotionSpace
from conftest import run_torchrun

ROOT = Path(__file__).resolve().parents[1]


def _setup(learnable_emoset, tiny_stage1_dir, tiny_sd_dir, tiny_correlation_dir, tmp_path, extra=()):
    cfg = parse_config(JointConfig, ["--preset", "tiny", f"data.root={learnable_emoset}",
                                            f"model.stage1={tiny_stage1_dir}", f"model.diffusion={tiny_sd_dir}",
                                            f"model.correlation={tiny_correlation_dir}", f"out_dir={tmp_path}",
                                            *extra], presets=joint.PRESETS)
    classifier, attributes, correlation, fusion, pipe, pid = stage2.load_components(cfg, "cpu")
    pipe.vae.requires_grad_(False)
    pipe.text_encoder.requires_grad_(False)
    stage2.set_trainable(classifier, fusion, pipe.unet, cfg.model)
    models = {"joint": stage2.UnderstandingAndFusion(classifier, fusion, correlation), "vae": pipe.vae,
              "unet": pipe.unet, "text_encoder": pipe.text_encoder, "tokenizer": pipe.tokenizer,
              "noise_scheduler": __import__("diffusers").DDPMScheduler.from_config(pipe.scheduler.config),
              "placeholder_id": pid, "attributes": attributes, "weight_dtype": torch.float32, "prompt": "<emotion>"}
    from uniemo.data import build_dataset, collate_records

    ds = build_dataset("emoset", learnable_emoset, "train", stage2.JointTransform(32, True))
    batch = collate_records([ds[i] for i in range(0, 40, 10)])
    return cfg, models, batch, pipe


def test_diffusion_gradient_reaches_mappers_queries_and_blocks_only(learnable_emoset, tiny_stage1_dir, tiny_sd_dir,
                                                                    tiny_correlation_dir, tmp_path):
    cfg, models, batch, pipe = _setup(learnable_emoset, tiny_stage1_dir, tiny_sd_dir, tiny_correlation_dir, tmp_path)
    terms = stage2.joint_step(models, batch, cfg, torch.Generator().manual_seed(0))
    terms["diffusion"]().backward()  # the diffusion loss alone
    inner = models["joint"]
    clf, fusion = inner.classifier, inner.fusion
    for name, module in [("cls_mapper", fusion.cls_mapper), ("scene_mapper", fusion.scene_mapper),
                         ("object_mapper", fusion.object_mapper), ("scene_block", clf.scene_block),
                         ("object_block", clf.object_block)]:
        grads = [p.grad for p in module.parameters()]
        assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0, name
    assert clf.scene_queries.grad is not None and clf.scene_queries.grad.abs().sum() > 0
    assert clf.object_queries.grad is not None and clf.object_queries.grad.abs().sum() > 0
    # frozen modules hold no gradient at all
    frozen = [pipe.unet, pipe.vae, pipe.text_encoder, clf.head, clf.transformer, clf.conv1]
    for module in frozen:
        assert all(p.grad is None for p in module.parameters()), type(module).__name__
    assert clf.positional_embedding.grad is None


def test_all_terms_finite_and_condition_head_learns(learnable_emoset, tiny_stage1_dir, tiny_sd_dir,
                                                    tiny_correlation_dir, tmp_path):
    cfg, models, batch, _ = _setup(learnable_emoset, tiny_stage1_dir, tiny_sd_dir, tiny_correlation_dir, tmp_path)
    terms = stage2.joint_step(models, batch, cfg, torch.Generator().manual_seed(0))
    values = {k: f() for k, f in terms.items()}
    assert all(torch.isfinite(v) for v in values.values()), values
    values["condition"].backward()
    assert models["joint"].fusion.condition_head.weight.grad.abs().sum() > 0


def test_tiny_joint_run_resumes_and_writes_a_model_folder(learnable_emoset, tiny_stage1_dir, tiny_sd_dir,
                                                         tiny_correlation_dir, tmp_path):
    common = ["--preset", "tiny", f"data.root={learnable_emoset}", f"model.stage1={tiny_stage1_dir}",
              f"model.diffusion={tiny_sd_dir}", f"model.correlation={tiny_correlation_dir}", "batch_size=4",
              "max_steps=4", "checkpoint_every=2", "checkpoints_total_limit=3", "validation_every=2"]
    full = tmp_path / "full"
    joint.main(common + [f"out_dir={full}"])
    records = [json.loads(l) for l in (full / "metrics.jsonl").read_text().splitlines()]
    losses = [r for r in records if "train/loss_total" in r]
    assert losses and all(torch.isfinite(torch.tensor(r["train/loss_total"])) for r in losses)
    assert sorted(p.name for p in (full / "validation").iterdir()) == ["step-000002.png", "step-000004.png"]
    # resume from step 2 into a fresh run folder: same final weights
    resumed = tmp_path / "resumed"
    (resumed / "checkpoints").mkdir(parents=True)
    import shutil

    shutil.copytree(full / "checkpoints" / "checkpoint-2", resumed / "checkpoints" / "checkpoint-2")
    joint.main(common + [f"out_dir={resumed}", "resume=latest"])
    a = load_file(full / "checkpoints" / "checkpoint-4" / "model.safetensors")
    b = load_file(resumed / "checkpoints" / "checkpoint-4" / "model.safetensors")
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-6
    # the model folder loads offline through the pipeline
    from uniemo import UniEmoPipeline

    pipe = UniEmoPipeline.from_pretrained(full / "final")
    assert len(pipe.generate("awe", num_images=2, num_inference_steps=2)) == 2


def test_missing_stage1_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="model.stage1"):
        joint.main([f"out_dir={tmp_path}", "data.root=/nowhere"])


@pytest.mark.slow
def test_torchrun_emotion_space_matches_single_process(learnable_emoset, tiny_stage1_dir, tiny_sd_dir,
                                                       tiny_correlation_dir, tmp_path):
    """2 CPU processes (gloo): the tiny joint preset runs, and the emotion space fitted from the same model on
    the same data (max_steps=0) equals the single-process one within 1e-5 (float summation order)."""
    common = ["--preset", "tiny", f"data.root={learnable_emoset}", f"model.stage1={tiny_stage1_dir}",
              f"model.diffusion={tiny_sd_dir}", f"model.correlation={tiny_correlation_dir}"]

    def torchrun(args, port):  # port: kept for the call sites; a free one is picked
        run_torchrun(ROOT / "train" / "joint.py", [*common, *args])

    joint.main(common + ["max_steps=0", f"out_dir={tmp_path / 'single'}"])
    torchrun(["max_steps=0", f"out_dir={tmp_path / 'double'}"], 29531)
    last = json.loads((tmp_path / "double" / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["final"]["num_processes"] == 2, last  # one run over two processes, not two whole runs
    a = EmotionSpace.load(tmp_path / "single" / "final")
    b = EmotionSpace.load(tmp_path / "double" / "final")
    assert a.counts.tolist() == b.counts.tolist()
    assert a.allclose(b, atol=1e-5)
    # and a real 2-process training run of the tiny preset finishes with finite losses
    torchrun(["max_steps=4", "batch_size=4", f"out_dir={tmp_path / 'trained'}"], 29532)
    records = [json.loads(l) for l in (tmp_path / "trained" / "metrics.jsonl").read_text().splitlines()]
    assert any("train/loss_total" in r for r in records)
    assert (tmp_path / "trained" / "final" / "emotion_space.safetensors").is_file()


def test_object_prompts_put_the_noun_after_the_placeholder(learnable_emoset, tiny_stage1_dir, tiny_sd_dir,
                                                          tiny_correlation_dir, tmp_path, monkeypatch):
    """object_prompt_fraction=1: every image's diffusion prompt is "<emotion> {its first object}"."""
    cfg, models, batch, _ = _setup(learnable_emoset, tiny_stage1_dir, tiny_sd_dir, tiny_correlation_dir, tmp_path,
                                   extra=["object_prompt_fraction=1.0"])
    seen = []
    import uniemo.diffusion

    original = uniemo.diffusion.encode_condition

    def spy(text_encoder, tokenizer, condition, prompts, placeholder_id):
        seen.append(prompts)
        return original(text_encoder, tokenizer, condition, prompts, placeholder_id)

    monkeypatch.setattr(stage2, "encode_condition", spy)
    value = stage2.joint_step(models, batch, cfg, torch.Generator().manual_seed(0))["diffusion"]()
    assert torch.isfinite(value)
    assert seen[0] == [f"<emotion> {objs[0]}" for objs in batch["objects"]]
