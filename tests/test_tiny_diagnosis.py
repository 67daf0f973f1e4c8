"""eval/tiny_diagnosis.py on the bundled UniEmo-Tiny: every measurement runs, and the reading of the rule is right."""

import json
from pathlib import Path

import pytest

from uniemo.data.emoshapes import EmoShapesConfig, generate_emoshapes

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "assets" / "uniemo-tiny"


@pytest.mark.slow
def test_diagnosis_runs_every_measurement(tmp_path):
    from eval.tiny_diagnosis import main

    data = generate_emoshapes(tmp_path / "data", EmoShapesConfig(num_train=8, num_val=8, num_test=48, seed=99),
                              progress=False)
    report = main(["--model", str(BUNDLE), "--data-root", str(data), "--per-emotion", "2", "--seed", "5",
                   "--out", str(tmp_path / "d.json")])
    assert json.loads((tmp_path / "d.json").read_text()) == json.loads(json.dumps(report))
    emotions = list(report["generated"])
    assert len(emotions) == 8
    for section in ("generated", "captions", "condition_head"):
        assert all(0.0 <= report[section][e]["recognised"] <= 1.0 for e in emotions)
    for e in emotions:
        assert abs(sum(report["generated"][e]["classified_as"].values()) - 1) < 1e-9
        assert 0.0 <= report["generated"][e]["cell_of_the_emotion"] <= 1.0
    # the rule's crosswise pair: amusement's and sadness's means are each other's nearest
    nearest = report["nearest_means"]["scene_and_object"]
    assert nearest["amusement"]["nearest"] == "sadness" and nearest["sadness"]["nearest"] == "amusement"


def test_the_cells_of_amusement_and_sadness_share_their_groups_crosswise():
    from uniemo.data.emoshapes import CELLS_OF

    amusement, sadness = set(CELLS_OF["amusement"]), set(CELLS_OF["sadness"])
    assert {sg for sg, _ in amusement} == {sg for sg, _ in sadness}
    assert {og for _, og in amusement} == {og for _, og in sadness}
    assert not amusement & sadness
