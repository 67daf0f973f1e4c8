"""The measurements of the tiny bundles' reports (``eval/tiny_report.py`` for UniEmo-Tiny,
``eval/emosym_report.py`` for EmoSym-Tiny), written once so the two reports measure the same way on the same seeds.

A *judge* maps a list of PIL images to a tensor of class indices: emotion judges (a pipeline's own ``classify``,
another bundle's classifier, the probe on tiny-CLIP features) index the pipeline's emotions; the object judge
(``uniemo.tiny_judges.TinyClipJudge``) indexes the object names.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence

import torch
from PIL import Image

from uniemo.data.emoshapes import CELLS_OF, OBJECT_GROUP_OF

Judge = Callable[[Sequence[Image.Image]], torch.Tensor]


def feasible(emotion: str, noun: str) -> bool:
    """Whether some scene makes (scene, ``noun``) ``emotion`` under EmoShapes' rule. The rule decides an image's
    emotion from its scene and main object, so an image that shows the noun can carry the emotion only then (half
    the pairs: each emotion fills two of the table's four object columns)."""
    return any(og == OBJECT_GROUP_OF.get(noun) for _, og in CELLS_OF.get(emotion, ()))


def classify_judge(pipe) -> Judge:
    """``pipe.classify``'s label, as an index into ``pipe.emotions``."""
    emotions = list(pipe.emotions)
    return lambda images: torch.tensor([emotions.index(pipe.classify(im).label) for im in images])


def probe_judge(probe, embed: Callable[[Sequence[Image.Image]], torch.Tensor]) -> Judge:
    """The emotion probe over ``embed``'s image features (the tiny CLIP's)."""
    def judge(images):
        with torch.no_grad():
            return probe(embed(images)).argmax(1)
    return judge


def sample_real(dataset, n: int = 400) -> list[dict]:
    """About ``n`` records spread evenly over ``dataset`` (every k-th)."""
    return [dataset[i] for i in range(0, len(dataset), max(1, len(dataset) // n))]


def judge_accuracy(judge: Judge, records: Sequence[dict]) -> float:
    """An emotion judge's top-1 on real records."""
    predictions = judge([r["pixel_values"] for r in records])
    return (predictions == torch.tensor([r["labels"] for r in records])).float().mean().item()


def generation_recognised(pipe, judges: Mapping[str, Judge], per_emotion: int, seed: int
                          ) -> tuple[dict, dict[str, list[Image.Image]], list[float]]:
    """``per_emotion`` images per emotion (seeds ``seed``...), and for each judge the share recognised as their
    target emotion, overall (``recognised_by_<judge>``) and per emotion (``per_emotion_by_<judge>``). Also
    returns the images and the seconds per image of each emotion's batched call."""
    emotions = list(pipe.emotions)
    generated, timings = {}, []
    for e in emotions:
        t0 = time.perf_counter()
        generated[e] = pipe.generate(e, num_images=per_emotion, seed=seed)
        timings.append((time.perf_counter() - t0) / per_emotion)
    images = [im for e in emotions for im in generated[e]]
    targets = torch.tensor([i for i, e in enumerate(emotions) for _ in generated[e]])
    scores: dict = {"per_emotion": per_emotion}
    for name, judge in judges.items():
        predicted = judge(images)
        scores[f"recognised_by_{name}"] = (predicted == targets).float().mean().item()
        scores[f"per_emotion_by_{name}"] = {e: (predicted[targets == i] == i).float().mean().item()
                                            for i, e in enumerate(emotions)}
    scores["chance"] = 1 / len(emotions)
    return scores, generated, timings


def recognised_from_reference(pipe, real: Sequence[dict], per_class: int, seed: int) -> float:
    """Images generated with the condition taken from real test images (``generate(e, image=...)``,
    ``per_class`` references per emotion) recognised as that emotion by ``pipe.classify``. This separates how
    well the mappers carry an image's content into the SD from how well the emotion space stands for an
    emotion."""
    emotions = list(pipe.emotions)
    references = [[r for r in real if r["labels"] == i][:per_class] for i in range(len(emotions))]
    hits = [pipe.classify(pipe.generate(e, image=r["pixel_values"], seed=seed + k)[0]).label == e
            for i, e in enumerate(emotions) for k, r in enumerate(references[i])]
    return sum(hits) / len(hits)


def object_judge_on_real(judge: Judge, objects: Sequence[str], real: Sequence[dict]) -> float:
    """How often the object judge names one of a real image's objects."""
    judged = judge([r["pixel_values"] for r in real]).tolist()
    return sum(objects[p] in r["objects"] for p, r in zip(judged, real)) / len(real)


def transfer_measures(pipe, object_judge: Judge, objects: Sequence[str], emotion_judges: Mapping[str, Judge],
                      seeds: int, first_seed: int) -> tuple[dict, list[float]]:
    """``transfer(emotion, noun)`` for every pair (``seeds`` images each, seeds ``first_seed``...): the share
    showing the noun (overall and ``per_noun``), and for each emotion judge the share carrying the target emotion,
    overall and split by whether the rule allows the pair (``feasible``). Also returns the seconds per image."""
    emotions = list(pipe.emotions)
    hits, total, per_noun, timings = 0, 0, {}, []
    # per judge, {allowed?: [images recognised as their emotion, images]}
    tallies = {name: {True: [0, 0], False: [0, 0]} for name in emotion_judges}
    for noun in objects:
        noun_hits = 0
        for e in emotions:
            t0 = time.perf_counter()
            ims = pipe.transfer(e, noun, num_images=seeds, seed=first_seed)
            timings.append((time.perf_counter() - t0) / seeds)
            noun_hits += int((object_judge(ims) == objects.index(noun)).sum())
            for name, judge in emotion_judges.items():
                tally = tallies[name][feasible(e, noun)]
                tally[0] += int((judge(ims) == emotions.index(e)).sum())
                tally[1] += len(ims)
        per_noun[noun] = noun_hits / (len(emotions) * seeds)
        hits += noun_hits
        total += len(emotions) * seeds
    by_judge = {name: {"all": (t[True][0] + t[False][0]) / total,
                       "allowed": t[True][0] / t[True][1] if t[True][1] else None,
                       "forbidden": t[False][0] / t[False][1] if t[False][1] else None}
                for name, t in tallies.items()}
    return {"object_recognised": hits / total, "emotion_by_judge": by_judge, "per_noun": per_noun,
            "chance": 1 / len(objects), "seeds_per_pair": seeds, "first_seed": first_seed}, timings


def neutral_object_recognised(pipe, object_judge: Judge, objects: Sequence[str], seeds: int, first_seed: int
                              ) -> float:
    """The plain SD prompted with the noun alone (``pipe.neutral``, at transfer's guidance scale, as the demo
    shows the pair), as many images per noun as ``transfer_measures`` made, in calls of ``seeds`` consecutive
    seeds: the share showing the noun, the ceiling transfer works under."""
    emotions, hits = list(pipe.emotions), 0
    for noun in objects:
        ims = [im for k in range(len(emotions))
               for im in pipe.neutral(noun, num_images=seeds, seed=first_seed + k * seeds,
                                      guidance_scale=pipe.transfer_guidance_scale)]
        hits += int((object_judge(ims) == objects.index(noun)).sum())
    return hits / (len(objects) * len(emotions) * seeds)


def latencies(pipe, image, noun: str, batched: Mapping[str, Sequence[float]] | None = None,
              repeats: int = 3) -> dict:
    """Median seconds of single calls of classify / generate / transfer / fuse, the machine's load average
    (whether anything else shared the CPU), and ``<name>_per_image_batched``: the median of each list of seconds
    per image in ``batched`` (``generation_recognised``'s and ``transfer_measures``'s)."""
    result = {"load_average": round(os.getloadavg()[0], 2)}
    result.update({f"{name}_per_image_batched": round(statistics.median(seconds), 4)
                   for name, seconds in (batched or {}).items()})
    emotions = list(pipe.emotions)
    calls = (("classify", lambda: pipe.classify(image)), ("generate", lambda: pipe.generate(emotions[1])),
             ("transfer", lambda: pipe.transfer(emotions[6], noun)),
             ("fuse", lambda: pipe.fuse(emotions[0], emotions[6], weight=0.5)))
    for name, call in calls:
        runs = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            call()
            runs.append(time.perf_counter() - t0)
        result[name] = round(statistics.median(runs), 4)
    return result
