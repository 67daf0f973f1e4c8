"""uniemo.model_folder: the one writer of ``uniemo.json`` and of the model card, and the Hub round trip."""

import ast
import json
import shutil
from pathlib import Path

import pytest

from uniemo.model_folder import (FORMAT_VERSION, KEPT_END, KEPT_START, MANIFEST, MODEL_CARD, kept_card,
                                 read_manifest, write_manifest)

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "assets" / "uniemo-tiny"
SCANNED = ("uniemo", "train", "eval", "demo", "app.py")


def card(folder):
    from huggingface_hub import ModelCard

    return ModelCard.load(Path(folder) / MODEL_CARD)


# ------------------------------------------------------------------------------------- one place in the tree

def python_files():
    for name in SCANNED:
        path = ROOT / name
        yield from [path] if path.is_file() else sorted(path.rglob("*.py"))


def strings(tree):
    """(node, value) of every string constant that is not a bare string statement (a docstring)."""
    bare = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)}
    return [(n, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in bare]


def manifest_writes(tree):
    """Lines of calls that write a file named by "uniemo.json" (or by MANIFEST, or by a name assigned from one):
    ``.write_text``/``.write_bytes`` on it, ``open(it, "w")``/``it.open("w")``, ``shutil.copy*`` onto it."""

    def mentions(node, names):
        return any((isinstance(n, ast.Constant) and isinstance(n.value, str) and MANIFEST in n.value)
                   or (isinstance(n, ast.Name) and (n.id in names or n.id == "MANIFEST"))
                   or (isinstance(n, ast.Attribute) and n.attr == "MANIFEST") for n in ast.walk(node))

    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and mentions(node.value, names):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        modes = [a.value for a in [*node.args, *(k.value for k in node.keywords if k.arg == "mode")]
                 if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        target = None
        if name in ("write_text", "write_bytes") and isinstance(func, ast.Attribute):
            target = func.value
        elif name == "open" and any(set(m) & set("wax") for m in modes):
            target = func.value if isinstance(func, ast.Attribute) else (node.args[0] if node.args else None)
        elif name in ("copy", "copy2", "copyfile") and len(node.args) >= 2:
            target = node.args[1]
        if target is not None and mentions(target, names):
            lines.append(node.lineno)
    return lines


def test_uniemo_json_has_one_writer():
    writers = []
    for path in python_files():
        if path == ROOT / "uniemo" / "model_folder.py":
            continue
        writers += [f"{path.relative_to(ROOT)}:{line}" for line in manifest_writes(ast.parse(path.read_text()))]
    assert not writers, f"{MANIFEST} written outside uniemo.model_folder.write_manifest: {writers}"


def test_the_scan_finds_a_writer():
    for source in ['(out / "uniemo.json").write_text("{}")', 'p = out / "uniemo.json"\np.write_text("{}")',
                   'with open(folder + "/uniemo.json", "w") as f:\n    json.dump({}, f)',
                   '(out / MANIFEST).open("w")', 'shutil.copy(src, out / "uniemo.json")']:
        assert manifest_writes(ast.parse(source)), source
    assert not manifest_writes(ast.parse('info = json.loads((out / "uniemo.json").read_text())'))
    assert not manifest_writes(ast.parse('open(out / "uniemo.json")'))


def test_format_version_and_the_placeholder_are_defined_once():
    from uniemo.constants import PLACEHOLDER_TOKEN

    versions, literals = [], set()
    for path in python_files():
        tree = ast.parse(path.read_text())
        rel = path.relative_to(ROOT).as_posix()
        versions += [f"{rel}:{n.lineno}" for n in ast.walk(tree) if isinstance(n, (ast.Assign, ast.AnnAssign))
                     for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
                     if isinstance(t, ast.Name) and t.id == "FORMAT_VERSION"]
        if rel != "uniemo/constants.py":
            literals |= {rel for _, value in strings(tree)
                         if value.strip() == PLACEHOLDER_TOKEN or value.startswith(PLACEHOLDER_TOKEN + " ")}
    assert versions == [f"uniemo/model_folder.py:{_line_of('FORMAT_VERSION = ')}"], versions
    assert not literals, f"spell {PLACEHOLDER_TOKEN!r} as PLACEHOLDER_TOKEN in {sorted(literals)}"


def _line_of(prefix: str) -> int:
    lines = (ROOT / "uniemo" / "model_folder.py").read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.startswith(prefix))


# ------------------------------------------------------------------------------------ descriptor and card, alone

INFO = {"emotions": ["awe", "fear"], "components": ["classifier", "fusion", "emotion_space", "attributes"],
        "diffusion": "stable-diffusion-v1-5/stable-diffusion-v1-5", "placeholder_token": "<emotion>",
        "resolution": 512, "dataset": "emoset",
        "base_models": {"clip": "/data/weights/ViT-L-14.pt",
                        "diffusion": "stable-diffusion-v1-5/stable-diffusion-v1-5"}}


def test_manifest_round_trip_and_its_checks(tmp_path):
    written = write_manifest(tmp_path / "m", {**INFO, "format_version": 0, "path": "/somewhere"})
    assert list(written)[0] == "format_version" and written["format_version"] == FORMAT_VERSION
    assert "path" not in written
    assert read_manifest(tmp_path / "m") == written == json.loads((tmp_path / "m" / MANIFEST).read_text())

    with pytest.raises(FileNotFoundError, match=MANIFEST):
        read_manifest(tmp_path)
    (tmp_path / "newer").mkdir()
    (tmp_path / "newer" / MANIFEST).write_text(json.dumps({**written, "format_version": FORMAT_VERSION + 1}))
    with pytest.raises(ValueError, match="newer than this UniEmo"):
        read_manifest(tmp_path / "newer")
    (tmp_path / "newer" / MANIFEST).write_text(json.dumps({**written, "components": ["classifier"]}))
    with pytest.raises(ValueError, match=r"lacks component\(s\) \['fusion'"):
        read_manifest(tmp_path / "newer")
    assert read_manifest(tmp_path / "newer", required=("classifier",))["components"] == ["classifier"]
    (tmp_path / "newer" / MANIFEST).write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_manifest(tmp_path / "newer")


def test_card_front_matter_and_body(tmp_path):
    write_manifest(tmp_path / "m", INFO, name="someone/uniemo-emoset")
    c = card(tmp_path / "m")
    data = c.data.to_dict()
    assert data["library_name"] == "uniemo" and data["license"] == "apache-2.0"
    assert data["pipeline_tag"] == "text-to-image"
    assert {"emotion", "image-classification", "text-to-image", "stable-diffusion"} <= set(data["tags"])
    assert data["base_model"] == "stable-diffusion-v1-5/stable-diffusion-v1-5"  # a local CLIP file is no Hub base
    assert data["datasets"] == ["EmoSet"]
    assert 'UniEmoPipeline.from_pretrained("someone/uniemo-emoset")' in c.text
    assert "/data/weights" not in c.text and "ViT-L-14.pt" in c.text  # a local base by its name only
    assert "## Measured" not in c.text and "awe" in c.text

    stage1 = {"stage": "understanding", "emotions": ["awe", "fear"], "components": ["classifier"],
              "clip": "openai/clip-vit-large-patch14", "dataset": "fi", "best_val_top1": 0.5}
    write_manifest(tmp_path / "s1", stage1)
    c = card(tmp_path / "s1")
    assert c.data.pipeline_tag == "image-classification" and "text-to-image" not in c.data.tags
    assert c.data.base_model == "openai/clip-vit-large-patch14" and c.data.datasets == ["FI"]
    assert "validation top-1 (best checkpoint) | 50.0 %" in c.text and "EmoClassifier.from_pretrained" in c.text


def test_own_text_is_kept_and_numbers_come_from_the_folder(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "report.json").write_text(json.dumps({"classification": {"test_top1": 0.9}}))
    write_manifest(folder, INFO, title="UniEmo-EmoSet", description="Trained for the paper's table.",
                   sections=["## Limits\n\nIt knows EmoSet's eight emotions."], tags=["paper"], datasets=["FI"])
    text = (folder / MODEL_CARD).read_text()
    assert "| test top-1 | 90.0 % |" in text
    kept = kept_card(folder)
    assert kept == {"title": "UniEmo-EmoSet", "description": "Trained for the paper's table.\n\n## Limits\n\nIt "
                    "knows EmoSet's eight emotions.", "tags": ["paper"], "datasets": ["EmoSet", "FI"]}
    write_manifest(folder, INFO, **kept)  # written again: the same card
    assert (folder / MODEL_CARD).read_text() == text
    assert text.count(KEPT_START) == text.count(KEPT_END) == 1
    write_manifest(folder, INFO, metrics={})
    assert "## Measured" not in (folder / MODEL_CARD).read_text()
    assert kept_card(folder) == {"datasets": ["EmoSet"]} and kept_card(tmp_path / "nothing") == {}


def test_a_card_written_by_hand_is_kept_whole(tmp_path):
    (tmp_path / MODEL_CARD).write_text("---\nlicense: [unclosed\n---\n\nA note first.\n\n# Mine\n\nText.\n")
    assert kept_card(tmp_path) == {"title": "Mine", "description": "A note first.\n\nText."}
    write_manifest(tmp_path, INFO, **kept_card(tmp_path))
    assert kept_card(tmp_path) == {"title": "Mine", "description": "A note first.\n\nText.", "datasets": ["EmoSet"]}


# ------------------------------------------------------------------------------ the folders the scripts write

@pytest.fixture(scope="module")
def pipe(tiny_model_dir):
    from uniemo import UniEmoPipeline

    return UniEmoPipeline.from_pretrained(tiny_model_dir)


def test_stage_folders_carry_a_model_card(tiny_model_dir, tiny_stage1_dir):
    info = read_manifest(tiny_model_dir)
    c = card(tiny_model_dir)  # train/joint.py's final/
    assert c.data.library_name == "uniemo" and c.data.pipeline_tag == "text-to-image"
    assert c.data.datasets == ["EmoSet"] and info["dataset"] == "emoset"
    # the bases as given: the tiny SD folder (stage 1's CLIP was a random tiny one, recorded as none)
    assert Path(info["base_models"]["diffusion"]).name.startswith("tiny_sd") and "clip" not in info["base_models"]
    assert c.data.base_model is None  # the tiny SD is a local folder
    assert "UniEmoPipeline.from_pretrained(" in c.text and str(tiny_model_dir) not in c.text

    info1 = read_manifest(tiny_stage1_dir, required=("classifier",))
    c1 = card(tiny_stage1_dir)  # train/understanding.py's final/
    assert info1["stage"] == "understanding" and c1.data.pipeline_tag == "image-classification"
    assert "validation top-1" in c1.text


def test_save_pretrained_writes_a_card_and_loads_back(pipe, tmp_path):
    from uniemo import UniEmoPipeline

    pipe.save_pretrained(tmp_path / "copy")
    again = UniEmoPipeline.from_pretrained(tmp_path / "copy")
    assert again.emotions == pipe.emotions and again.info["dataset"] == pipe.info["dataset"]
    c = card(tmp_path / "copy")
    assert c.data.library_name == "uniemo" and c.data.pipeline_tag == "text-to-image"
    assert "emotion" in c.data.tags and c.data.license == "apache-2.0"
    assert 'UniEmoPipeline.from_pretrained("path/to/copy")' in c.text


def test_push_to_hub_uploads_the_folder(pipe, monkeypatch):
    from types import SimpleNamespace

    import huggingface_hub

    calls = {}

    def create_repo(self, repo_id, **kwargs):
        calls["create_repo"] = (repo_id, kwargs)
        return SimpleNamespace(repo_id=f"someone/{repo_id.split('/')[-1]}")

    def create_branch(self, repo_id, **kwargs):
        calls["create_branch"] = (repo_id, kwargs)

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        folder = Path(folder_path)
        calls["upload_folder"] = (repo_id, kwargs, sorted(p.relative_to(folder).as_posix()
                                                          for p in folder.rglob("*") if p.is_file()))
        calls["card"] = (folder / MODEL_CARD).read_text()
        calls["manifest"] = read_manifest(folder)
        return "commit"

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "create_branch", create_branch)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    assert pipe.push_to_hub("uniemo-test", private=True, revision="v1") == "commit"
    assert calls["create_repo"] == ("uniemo-test", {"private": True, "exist_ok": True, "repo_type": "model"})
    assert calls["create_branch"][0] == "someone/uniemo-test" and calls["create_branch"][1]["branch"] == "v1"
    repo, kwargs, files = calls["upload_folder"]
    assert repo == "someone/uniemo-test" and kwargs["revision"] == "v1" and kwargs["repo_type"] == "model"
    assert {MANIFEST, MODEL_CARD, "classifier/config.json", "classifier/model.safetensors", "fusion/config.json",
            "emotion_space.safetensors", "attributes.json", "correlation.safetensors",
            "diffusion/model_index.json", "diffusion/unet/diffusion_pytorch_model.safetensors"} <= set(files)
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pkl"))]
    assert 'UniEmoPipeline.from_pretrained("someone/uniemo-test")' in calls["card"]
    assert set(calls["manifest"]["components"]) == set(read_manifest(pipe.info["path"])["components"])


def test_from_pretrained_passes_the_revision(tiny_model_dir, monkeypatch):
    import huggingface_hub

    from uniemo import UniEmoPipeline

    seen = {}

    def snapshot_download(repo_id, **kwargs):
        seen.update(repo_id=repo_id, **kwargs)
        return str(tiny_model_dir)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    loaded = UniEmoPipeline.from_pretrained("someone/uniemo-test", revision="v1")
    assert seen["repo_id"] == "someone/uniemo-test" and seen["revision"] == "v1"
    assert loaded.info["path"] == str(tiny_model_dir)
    UniEmoPipeline.from_pretrained("someone/uniemo-test")
    assert seen["revision"] is None
    with pytest.raises(ValueError, match="revision"):
        UniEmoPipeline.from_pretrained(tiny_model_dir, revision="v1")


# ------------------------------------------------------------------------------------------- the tiny bundle

def test_the_bundle_card_has_front_matter():
    c = card(BUNDLE)
    assert c.data.library_name == "uniemo" and c.data.license == "apache-2.0" and "synthetic" in c.data.tags


def test_tiny_world_writes_the_bundle_descriptor_again_and_keeps_its_card_text(tmp_path, monkeypatch):
    """train/tiny_world.py, given the bundle's card as the one it replaces: the same uniemo.json to the byte, and a
    card with the Hub metadata around the bundle's own text, unchanged when written once more."""
    from train.tiny_world import write_bundle_descriptor

    monkeypatch.chdir(tmp_path)  # the card names the folder as it was given: assets/uniemo-tiny
    out = Path("assets") / "uniemo-tiny"
    out.mkdir(parents=True)
    for name in (MANIFEST, MODEL_CARD, "attributes.json"):
        shutil.copy(BUNDLE / name, out / name)
    own = kept_card(BUNDLE)["description"]
    write_bundle_descriptor(out, kept_card(out))
    assert (out / MANIFEST).read_bytes() == (BUNDLE / MANIFEST).read_bytes()
    c = card(out)
    assert c.data.pipeline_tag == "text-to-image" and c.data.datasets == ["EmoShapes"]
    assert set(card(BUNDLE).data.tags) <= set(c.data.tags)
    assert own in c.text and c.text.index("# UniEmo-Tiny") < c.text.index(own)
    assert 'UniEmoPipeline.from_pretrained("assets/uniemo-tiny")' in c.text
    text = (out / MODEL_CARD).read_text()
    write_bundle_descriptor(out, kept_card(out))
    assert (out / MODEL_CARD).read_text() == text


def test_the_bundle_loads(tmp_path):
    from uniemo import UniEmoPipeline

    pipe = UniEmoPipeline.from_pretrained(BUNDLE)
    assert pipe.info["stage1"] == "train/tiny_world.py" and pipe.resolution == 64
