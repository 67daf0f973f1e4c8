"""Rehearsal at the real models' geometry: every script and every pipeline call, with random weights.

The tiny-model tests cannot catch what only the real sizes bring (SD 1.5's four-level UNet with 768-wide
cross-attention, the 49 408-token BPE tokenizer, ViT-B/32's 224-px input, bf16 on billion-parameter
modules). This module writes, once per session:

- a CLIP ViT-B/32 (open_clip's ``ViT-B-32-quickgelu`` geometry: vision width 768, 12 layers, patch 32, 224 px;
  text width 512, 12 layers, 8 heads, vocabulary 49 408; projection 512) with random weights, both as an
  OpenAI-format ``.safetensors`` state dict and, converted, as a transformers folder with the real BPE tokenizer;
- a diffusers Stable Diffusion folder with SD 1.5's UNet, VAE, PNDM scheduler and text encoder (CLIP ViT-L/14's
  text tower) configs, nothing reduced, random weights, the real tokenizer, no safety checker
  (``uniemo.real_geometry.build_sd15_pipeline``);
- a tiny EmoShapes set (16 training images, two per emotion; 8 validation, 8 test).

Then stage 1 (from the folder, and from the OpenAI file), the probe and stage 2 run for one step each, in
fp32 (``mixed_precision=no``) and in bf16, and each final model folder answers classify, generate, transfer
(plain and noun-guided) and fuse with one sampler step. Images are 64 px: 8x8 latents, the smallest size at
which each of the UNet's three downsamplings halves its input exactly (8 -> 4 -> 2 -> 1); below it diffusers
has to resize the up path.

Marked ``rehearsal`` (and ``slow``); CI runs it. On 2 CPU cores it took 1.5 minutes on an idle machine (up to
about 5 on a busy one) and peaks at about 8 GB of memory (the bf16 model folder loaded back in bf16, with the
training run's modules still alive in the same process). The module prints its timings and peak memory at the end; ``pytest -m "not rehearsal"``
leaves it out.
"""

import gc
import json
import resource
import shutil
import time

import numpy as np
import pytest
import torch

pytestmark = [pytest.mark.rehearsal, pytest.mark.slow]

PRECISIONS = {"fp32": "no", "bf16": "bf16"}
SIZE = 64  # pixels, 8x8 latents
TIMINGS: dict[str, tuple[float, float]] = {}  # part -> (seconds, the process's peak memory in GB after it)

def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: kilobytes


def _timed(name: str, fn, *args, **kwargs):
    start = time.perf_counter()
    TIMINGS.setdefault("", (start, 0.0))  # when the first part began
    try:
        return fn(*args, **kwargs)
    finally:
        gc.collect()
        TIMINGS[name] = (time.perf_counter() - start, _peak_gb())


@pytest.fixture(scope="module", autouse=True)
def _report(request):
    """Print the time of each part, per precision, and the peak memory when the module ends (past the capture)."""
    yield
    began, _ = TIMINGS.pop("", (time.perf_counter(), 0.0))
    parts = {"fp32": 0.0, "bf16": 0.0, "shared": 0.0}
    for name, (seconds, _) in TIMINGS.items():
        parts[next((p for p in PRECISIONS if f"[{p}" in name), "shared")] += seconds
    lines = [f"real-geometry rehearsal: {time.perf_counter() - began:.0f} s "
             f"(fp32 {parts['fp32']:.0f} s, bf16 {parts['bf16']:.0f} s, shared {parts['shared']:.0f} s), "
             f"peak memory (max RSS of this process) {_peak_gb():.1f} GB",
             *(f"  {name:<46} {seconds:6.1f} s   peak so far {peak:4.1f} GB"
               for name, (seconds, peak) in TIMINGS.items())]
    with request.config.pluginmanager.getplugin("capturemanager").global_and_fixture_disabled():
        print("\n" + "\n".join(lines))


def _write_clip(root):
    """ViT-B/32 with random weights: the OpenAI-format file, and the transformers folder converted from it."""
    import open_clip
    from safetensors.torch import save_file

    from uniemo.clip import load_clip

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = open_clip.create_model("ViT-B-32-quickgelu", pretrained=None)
    openai_file = root / "ViT-B-32.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, openai_file)
    del model
    clip, tokenizer = load_clip(str(openai_file))
    folder = root / "clip-vit-base-patch32"
    clip.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, openai_file


def _write_sd15(path):
    """SD 1.5's configs with random weights and the real tokenizer, saved as a diffusers folder."""
    from uniemo.real_geometry import build_sd15_pipeline

    build_sd15_pipeline(seed=0).save_pretrained(path, safe_serialization=True)


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    """The CLIP (folder and OpenAI file), the SD 1.5 folder and the EmoShapes data, written once and removed when
    the session ends (with every model folder the stages wrote under it)."""
    from uniemo.data.emoshapes import EmoShapesConfig, generate_emoshapes

    root = tmp_path_factory.mktemp("real_geometry")
    data = _timed("write EmoShapes (16/8/8 images)", generate_emoshapes, root / "emoshapes", EmoShapesConfig(
        image_size=SIZE, num_train=16, num_val=8, num_test=8, seed=0, label_noise=0.0), progress=False)
    clip_folder, clip_file = _timed("write CLIP ViT-B/32 (file + folder)", _write_clip, root)
    sd = root / "sd15"
    _timed("write SD 1.5 folder", _write_sd15, sd)
    yield {"root": root, "data": data, "clip": clip_folder, "clip_file": clip_file, "sd": sd}
    # the models written here come to about 18 GB; pytest keeps its last three base temp folders, so leaving them
    # would fill a disk after a few runs
    shutil.rmtree(root, ignore_errors=True)


def _reset_accelerate():
    """Each script builds an Accelerator; the process-wide state must not carry one precision into the next."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def _stage1(world, clip, out, precision):
    from train.understanding import main

    _reset_accelerate()
    source = "OpenAI file" if clip.is_file() else "CLIP folder"
    return _timed(f"stage 1 [{precision}, {source}]", main, [
        "data.dataset=emoshapes", f"data.root={world['data']}", "data.num_workers=0", f"model.clip={clip}",
        f"out_dir={out}", "batch_size=2", "eval_batch_size=8", "max_steps=1", "log_every=1",
        f"mixed_precision={PRECISIONS[precision]}"])


@pytest.fixture(scope="session")
def stage1_fp32(world):
    out = world["root"] / "stage1-fp32"
    _stage1(world, world["clip"], out, "fp32")
    return out / "final"


@pytest.fixture(scope="session")
def probe(world):
    from train.probe import main

    out = world["root"] / "probe"
    _timed("probe", main, [
        "data.dataset=emoshapes", f"data.root={world['data']}", "data.num_workers=0",
        f"model.clip={world['clip']}", f"out_dir={out}", "epochs=2", "batch_size=16", "embed_batch_size=16",
        "probe_hidden=64", "device=cpu"])
    return out


def test_stage1_from_openai_file_equals_folder(world, stage1_fp32):
    """The same CLIP given as an OpenAI file: same classifier geometry, same attribute text embeddings."""
    from safetensors.torch import load_file

    out = world["root"] / "stage1-openai-file"
    assert _stage1(world, world["clip_file"], out, "fp32")["steps"] == 1
    final = out / "final"
    ours, theirs = (json.loads((d / "classifier" / "config.json").read_text()) for d in (final, stage1_fp32))
    assert ours == theirs and ours["width"] == 768 and ours["patch_size"] == 32 and ours["image_size"] == 224
    a, b = (load_file(d / "attributes.safetensors") for d in (final, stage1_fp32))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-4)


def _check_images(images) -> np.ndarray:
    assert len(images) == 1 and images[0].size == (SIZE, SIZE)
    pixels = np.asarray(images[0])
    assert pixels.std() > 0, "a flat image: NaN latents come out black"
    return pixels


def _exercise(model_dir, image, dtype=None):
    """Load the model folder and call every public generation path once (1 sampler step, 64 px)."""
    from uniemo import UniEmoPipeline

    pipe = UniEmoPipeline.from_pretrained(model_dir, **({} if dtype is None else {"dtype": dtype}))
    emotions = pipe.emotions
    pred = pipe.classify(image)
    assert pred.label in emotions and abs(sum(pred.probs.values()) - 1) < 1e-4
    assert pred.scene_attention.shape == (7, 7) and np.isfinite(pred.object_attention).all()
    steps = dict(num_inference_steps=1, size=SIZE, seed=0)
    _check_images(pipe.generate(emotions[0], **steps))
    # noun_guidance_scale equal to guidance_scale is the plain path; a different one the composed guidance
    plain = _check_images(pipe.transfer(emotions[1], "lamp", guidance_scale=5.0, noun_guidance_scale=5.0, **steps))
    guided = _check_images(pipe.transfer(emotions[1], "lamp", guidance_scale=5.0, noun_guidance_scale=9, **steps))
    assert not np.array_equal(plain, guided), "noun guidance changed nothing"
    _check_images(pipe.fuse(emotions[2], emotions[3], weight=0.7, **steps))


@pytest.mark.parametrize("precision", list(PRECISIONS))
def test_scripts_and_pipeline_end_to_end(world, stage1_fp32, probe, precision):
    """Stage 1 -> probe -> stage 2 -> UniEmoPipeline, at SD 1.5 / ViT-B/32 geometry, in fp32 and in bf16.

    The fp32 model folder refers to the diffusion base by its path, as a folder trained from the Hub's SD 1.5
    does (and saves writing and holding a second fp32 copy of the UNet); the bf16 one carries its own copy of the
    base (copied file for file, not from the bf16-cast modules), and draws a validation grid during training.
    """
    from train.joint import main

    if precision == "fp32":
        stage1 = stage1_fp32
        extra = ["model.copy_diffusion=false", "validation_every=0"]
    else:
        stage1 = world["root"] / f"stage1-{precision}"
        assert _stage1(world, world["clip"], stage1, precision)["steps"] == 1
        stage1 = stage1 / "final"
        extra = ["model.copy_diffusion=true", "validation_every=1", "validation_steps=1"]
    out = world["root"] / f"stage2-{precision}"
    _reset_accelerate()
    summary = _timed(f"stage 2 [{precision}]", main, [
        "data.dataset=emoshapes", f"data.root={world['data']}", "data.num_workers=0", f"model.stage1={stage1}",
        f"model.diffusion={world['sd']}", f"model.correlation={probe}", f"out_dir={out}", f"resolution={SIZE}",
        "batch_size=2", "max_steps=1", "log_every=1", "space_batch_size=16",
        f"mixed_precision={PRECISIONS[precision]}", *extra])
    assert summary["steps"] == 1
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [v for r in records for k, v in r.items() if k.startswith("train/loss")]
    assert losses and np.isfinite(losses).all()
    final = out / "final"
    info = json.loads((final / "uniemo.json").read_text())
    assert {"classifier", "fusion", "emotion_space", "correlation"} <= set(info["components"])
    assert ("diffusion" in info["components"]) == (precision != "fp32")
    if precision != "fp32":
        assert list((out / "validation").glob("step-*.png"))
    image = next((world["data"] / "image").rglob("*.jpg"))
    _timed(f"pipeline calls [{precision} folder]", _exercise, final, image)
    if precision != "fp32":
        _timed(f"pipeline calls [{precision} folder, dtype={precision}]", _exercise, final, image, precision)
