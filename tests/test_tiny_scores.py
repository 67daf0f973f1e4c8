"""eval/tiny_scores.py: the offline score report of UniEmo-Tiny."""

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "assets" / "uniemo-tiny"


@pytest.fixture(scope="module")
def small_world(tmp_path_factory):
    from uniemo.data.emoshapes import EmoShapesConfig, generate_emoshapes

    return generate_emoshapes(tmp_path_factory.mktemp("world") / "emoshapes",
                              EmoShapesConfig(num_train=96, num_val=96, num_test=96, seed=3), progress=False)


def test_export_real_takes_the_first_images_of_each_emotion(small_world, tmp_path):
    from eval.tiny_scores import export_real
    from uniemo.data.feedback import read_manifest

    entries = json.loads((Path(small_world) / "test.json").read_text())
    emotions = ["sadness", *sorted({e for e, _, _ in entries} - {"sadness"})]  # the order given is kept
    out = export_real(Path(small_world), "test", 3, tmp_path / "real", emotions)
    rows = read_manifest(out)
    assert len(rows) == 3 * len(emotions)
    assert json.loads((out / "generation.json").read_text())["emotions"] == emotions
    assert list(dict.fromkeys(r["emotion"] for r in rows)) == emotions
    for e in emotions:
        first = [Path(p).name for em, p, _ in entries if em == e][:3]
        assert [Path(r["path"]).name for r in rows if r["emotion"] == e] == first
        assert all((out / r["path"]).is_file() for r in rows)
    with pytest.raises(ValueError, match="fewer than"):
        export_real(Path(small_world), "test", 1000, tmp_path / "too-many", emotions)


@pytest.mark.slow
def test_score_report_of_the_bundle(small_world, tmp_path):
    """The whole report on a few images: every metric present, the real images score as real ones should."""
    from eval.tiny_scores import main

    out = tmp_path / "scores.json"
    report = main(["--model", str(BUNDLE), "--data-root", str(small_world), "--work", str(tmp_path / "work"),
                   "--per-emotion", "6", "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    for side in ("generated", "real_test_images"):
        assert set(report[side]) == {"lpips_random_trunk", "emo_a", "sem_c_clip", "sem_d_mse", "sem_d_cosine",
                                     "fid_clip"}
        assert 0.0 <= report[side]["emo_a"] <= 1.0 and report[side]["fid_clip"] >= 0.0
    # real test images against the real val split are closer than generations are
    assert report["real_test_images"]["fid_clip"] < report["generated"]["fid_clip"]
