"""Mistakes in a training command are caught right after parsing, before any model loads; every script's
``--help`` answers without importing torch; the presets point at what other presets write."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p for d in ("train", "eval") for p in (ROOT / d).glob("*.py")
                 if p.name != "__init__.py" and "def main(" in p.read_text()) + [ROOT / "app.py"]


def test_joint_with_no_arguments_prints_usage_and_exits_2():
    run = subprocess.run([sys.executable, str(ROOT / "train" / "joint.py")], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 2
    assert run.stderr.startswith("usage: joint.py") and "model.stage1 is not set" in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_help_answers_without_importing_torch(script):
    probe = ("import runpy, sys\n"
             f"sys.argv = [{str(script)!r}, '--help']\n"
             "try:\n"
             f"    runpy.run_path({str(script)!r}, run_name='__main__')\n"
             "except SystemExit as e:\n"
             "    assert e.code in (0, None), e.code\n"
             "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n")
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert "usage:" in run.stdout and run.stdout.strip().endswith("NO-TORCH")


def test_help_suggests_only_keys_the_script_accepts():
    from uniemo.training.joint_config import JointConfig as Config
    from uniemo.config import _example_override, parse_config

    example = _example_override(Config)
    assert parse_config(Config, ["model.stage1=x", example])  # the suggested override parses


def _fake_stage1(root: Path, clip: str, proj_dim: int) -> Path:
    (root / "classifier").mkdir(parents=True)
    (root / "classifier" / "config.json").write_text(json.dumps({"proj_dim": proj_dim, "width": 768}))
    (root / "uniemo.json").write_text(json.dumps({"stage": "understanding", "clip": clip}))
    return root


def _fake_probe(root: Path, clip: str, embed_dim: int) -> Path:
    root.mkdir(parents=True)
    (root / "config.yaml").write_text(yaml.safe_dump({"model": {"clip": clip, "preset": "vit-b-32"}}))
    (root / "correlation.json").write_text(json.dumps({"embed_dim": embed_dim}))
    return root


def _joint_argv(tmp_path, stage1, probe):
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    return [f"model.stage1={stage1}", f"model.correlation={probe}", f"data.root={data}",
            "model.diffusion=stable-diffusion-v1-5/stable-diffusion-v1-5"]


def test_a_vit_b32_stage1_with_a_vit_l14_probe_is_refused_before_loading(tmp_path, monkeypatch):
    from train import joint

    stage1 = _fake_stage1(tmp_path / "s1", "openai/clip-vit-base-patch32", 512)
    probe = _fake_probe(tmp_path / "probe", "openai/clip-vit-large-patch14", 768)

    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded before the check")

    import uniemo.training.joint as joint_loop

    monkeypatch.setattr(joint_loop, "load_components", no_loading)
    with pytest.raises(ValueError) as info:
        joint.main(_joint_argv(tmp_path, stage1, probe))
    message = str(info.value)
    assert "openai/clip-vit-base-patch32" in message and "openai/clip-vit-large-patch14" in message

    # same width, another CLIP (say ViT-B/16 beside B/32): still refused by name
    probe16 = _fake_probe(tmp_path / "probe16", "openai/clip-vit-base-patch16", 512)
    with pytest.raises(ValueError, match="clip-vit-base-patch16"):
        joint.main(_joint_argv(tmp_path, stage1, probe16))


def test_the_command_line_refusal_names_both_clips_and_exits_2(tmp_path):
    stage1 = _fake_stage1(tmp_path / "s1", "openai/clip-vit-base-patch32", 512)
    probe = _fake_probe(tmp_path / "probe", "openai/clip-vit-large-patch14", 768)
    run = subprocess.run([sys.executable, str(ROOT / "train" / "joint.py"), *_joint_argv(tmp_path, stage1, probe)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "clip-vit-base-patch32" in run.stderr and "clip-vit-large-patch14" in run.stderr


@pytest.mark.parametrize("key, value, message", [
    ("model.stage1", "missing-folder", "model.stage1='missing-folder' does not exist"),
    ("data.root", "no-such-data", "data.root='no-such-data' does not exist"),
    ("model.diffusion", "./no-sd", "model.diffusion='./no-sd' does not exist"),
    ("feedback.manifest", "nope.jsonl", "feedback.manifest='nope.jsonl' does not exist"),
])
def test_missing_paths_are_named_by_their_key(tmp_path, monkeypatch, key, value, message):
    from train import joint

    monkeypatch.chdir(tmp_path)
    stage1 = _fake_stage1(tmp_path / "s1", "openai/clip-vit-base-patch32", 512)
    argv = {a.split("=")[0]: a for a in _joint_argv(tmp_path, stage1, tmp_path / "unused")}
    del argv["model.correlation"]
    argv[key] = f"{key}={value}"
    with pytest.raises((FileNotFoundError, ValueError), match=message.replace("(", r"\(").replace(".", r"\.")):
        joint.main(list(argv.values()))


def test_the_same_local_clip_matches_itself_by_content(tmp_path):
    from uniemo.training.checks import clip_identity

    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        folder.mkdir()
        (folder / "config.json").write_text("{}")
        (folder / "model.safetensors").write_bytes(b"same weights")
    assert clip_identity(str(a)) == clip_identity(str(b))  # a moved or copied folder is still the same CLIP
    (b / "model.safetensors").write_bytes(b"other weights")
    assert clip_identity(str(a)) != clip_identity(str(b))
    assert clip_identity(None, "tiny") == "random-tiny"
    assert clip_identity("openai/clip-vit-base-patch32") == "openai/clip-vit-base-patch32"


def _presets(kind: str) -> dict[str, dict]:
    return {p.stem.removeprefix(kind + "_"): yaml.safe_load(p.read_text())
            for p in (ROOT / "train" / "configs").glob(f"{kind}_*.yaml")}


def test_joint_presets_point_at_what_the_stage1_and_probe_presets_write():
    stage1_out = {cfg["out_dir"] + "/final": cfg for cfg in _presets("understanding").values()}
    probe_out = {cfg["out_dir"]: cfg for cfg in _presets("probe").values()}
    checked = 0
    for name, cfg in _presets("joint").items():
        model = cfg.get("model", {})
        if "stage1" not in model:
            continue
        assert model["stage1"] in stage1_out, f"joint preset {name}: no stage-1 preset writes {model['stage1']}"
        assert model["correlation"] in probe_out, f"joint preset {name}: no probe preset writes {model['correlation']}"
        clips = (stage1_out[model["stage1"]]["model"]["clip"], probe_out[model["correlation"]]["model"]["clip"])
        assert clips[0] == clips[1], f"joint preset {name} pairs CLIPs {clips}"
        checked += 1
    assert checked >= 2  # emoset-sd15 and official
