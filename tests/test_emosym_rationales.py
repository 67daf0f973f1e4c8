"""EmoSym's knowledge base: EmoShapes' rule sentences decide the emotion, the JSONL file and the attribute
templates fill in for EmoSet, bad files say where, and the base finds the nearest sentence."""

import json

import pytest
import torch

from uniemo.data.base import ImageEntry
from uniemo.data.emoshapes.rule import OBJECTS, SCENES, emotion_of
from uniemo.emosym.rationales import (CELL_MEANING, RationaleBase, attribute_rationale, cell_emotion,
                                      emoshapes_rationale, rationales_for, read_rationale_file)


def test_emoshapes_rationales_name_their_cell_and_so_decide_the_emotion():
    sentences = {}
    for scene in SCENES:
        for obj in OBJECTS:
            sentence = emoshapes_rationale(scene, [obj, "cake"])  # only the main object is read
            sentences[sentence] = emotion_of(scene, [obj])
            assert cell_emotion(scene, [obj]) == emotion_of(scene, [obj])
    assert len(sentences) == len(SCENES) * len(OBJECTS) == 192
    assert emoshapes_rationale("cemetery", ["skull"]) == "a skull in a cemetery: a spooky game in the dark"
    # a cell's meaning belongs to exactly one emotion
    meaning_to_emotion = {}
    for sentence, emotion in sentences.items():
        meaning = sentence.split(": ", 1)[1]
        assert meaning_to_emotion.setdefault(meaning, emotion) == emotion
    assert len(meaning_to_emotion) == len(CELL_MEANING) == 16


def test_attribute_templates_never_name_the_emotion():
    entry = ImageEntry("x.jpg", 0, scene="amusement_park", objects=["balloon", "dog"],
                       extra={"brightness": "bright", "facial_expression": "happy", "human_action": "none"})
    assert attribute_rationale(entry) == "a balloon and a dog in an amusement park, bright brightness, a happy face"
    assert attribute_rationale(ImageEntry("y.jpg", 1)) is None


def test_file_rationales_first_templates_as_fallback(tmp_path):
    f = tmp_path / "r.jsonl"
    f.write_text(json.dumps({"image": "image/amusement/a_1.jpg", "rationale": "A clown juggles. "}) + "\n\n"
                 + json.dumps({"image": "b_2", "rationale": "Rain on a grave."}) + "\n")
    sentences = read_rationale_file(f)
    entries = [ImageEntry(str(tmp_path / "image/amusement/a_1.jpg"), 0, scene="circus"),
               ImageEntry(str(tmp_path / "image/sadness/b_2.jpg"), 7),
               ImageEntry(str(tmp_path / "image/awe/c_3.jpg"), 1, scene="mountain", objects=["cloud"])]
    got = rationales_for(entries, "file", root=tmp_path, file_rationales=sentences)
    assert got == ["A clown juggles.", "Rain on a grave.", "a cloud in a mountain"]
    with pytest.raises(ValueError, match="no rationale for .*d_4.jpg"):
        rationales_for([ImageEntry("d_4.jpg", 2)], "file", file_rationales=sentences)
    with pytest.raises(ValueError, match="unknown rationale source"):
        rationales_for(entries, "gpt")


@pytest.mark.parametrize("line, message", [("{not json", "r.jsonl:1"), ('{"image": "a"}', "r.jsonl:1"),
                                           ('{"image": "a", "rationale": "  "}', "is empty")])
def test_bad_rationale_files_name_the_line(tmp_path, line, message):
    f = tmp_path / "r.jsonl"
    f.write_text(line + "\n")
    with pytest.raises(ValueError, match=message):
        read_rationale_file(f)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_rationale_file(tmp_path / "missing.jsonl")


def test_base_keeps_distinct_sentences_and_finds_the_nearest():
    table = {"a": [1.0, 0.0], "b": [0.0, 1.0], "c": [0.6, 0.8]}
    base = RationaleBase.from_text_encoder(["a", "b", "a", "c"], lambda s: torch.tensor([table[x] for x in s]))
    assert base.sentences == ["a", "b", "c"] and len(base) == 3
    near = base.nearest(torch.tensor([[2.0, 0.1], [0.0, -1.0]]), k=2)
    assert [s for s, _ in near[0]] == ["a", "c"]
    assert near[0][0][1] == pytest.approx(2 / (4.01 ** 0.5), rel=1e-5)
    assert near[1][0] == ("a", pytest.approx(0.0, abs=1e-6))  # cosines 0, -1, -0.8: the largest first
    with pytest.raises(ValueError, match="distinct"):
        RationaleBase(["a", "a"], torch.eye(2))
