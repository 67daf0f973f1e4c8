"""eval/benchmark.py (uniemo.benchmarks): JSON structure, frozen-module gradient memory, FLOP arithmetic, the
README table, eval/generate.py on 1 and 2 processes.

Times are never asserted (the machine is shared and timings are noise at --quick sizes); memory is, since it
does not depend on load.
"""

import json
import math
import os
import statistics
import sys
from pathlib import Path

import pytest
import torch

from eval import benchmark
from uniemo.benchmarks import generation_processes, report, understanding
from uniemo.benchmarks.settings import FROZEN_GROUPS, BenchmarkSettings
from uniemo.classifier import EmoClassifierConfig

ROOT = Path(__file__).resolve().parents[1]

README = """# Project

Intro text that must survive.

## Tests

Run them.

## Citation

@article{x}
"""


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("benchmark")
    readme = tmp / "README.md"
    readme.write_text(README)
    out = tmp / "benchmark.json"
    threads = torch.get_num_threads()
    results = benchmark.main(["--quick", "--out", str(out), "--readme", str(readme)])
    assert torch.get_num_threads() == threads  # main() times with 1 thread, then restores the caller's setting
    return results, out, readme


@pytest.mark.slow
def test_json_structure(quick_run):
    results, out, _ = quick_run
    assert json.loads(out.read_text()) == json.loads(json.dumps(results))
    for key in ("environment", "understanding", "generation", "training", "memory", "demo", "generation_processes",
                "checks"):
        assert key in results, key
    assert results["quick"] is True
    u = results["understanding"]
    assert set(u["batches"]) == {"1", "4"} and u["checked_at_batch"] == 4
    for batch in u["batches"].values():
        assert set(batch["seconds"]) == {"clip_sdpa", "own_plain", "ours"}
    assert u["clip_attn_implementation"] == "sdpa"
    assert u["parity_max_abs_diff"] < 1e-4  # the same weights reach both towers
    assert set(u["breakdown"]) >= {"clip_sdpa", "own_plain", "ours"}
    assert set(results["demo"]["seconds"]) == {"bare_classifier_forward", "classify", "stock_sd", "generate"}
    assert results["training"]["batches"] == [1, 4]
    assert all(isinstance(v, bool) for v in results["checks"].values())
    assert isinstance(u["within_15_percent"], bool) and isinstance(results["generation"]["at_most_1_05"], bool)


@pytest.mark.slow
def test_ratios_are_positive_finite_numbers(quick_run):
    results, _, _ = quick_run
    u, g, t, m, d = (results[k] for k in ("understanding", "generation", "training", "memory", "demo"))
    ratios = [u["ideal_ratio_vs_clip_sdpa"], u["ideal_ratio_vs_own_plain"], u["measured_ratio"],
              g["ratio_vs_stock"], t["per_image_speedup"], m["peak_ratio_official_over_uniemo"],
              d["classify_ratio_vs_bare_forward"], d["generate_ratio_vs_stock_sd"]]
    for batch in u["batches"].values():
        ratios += [batch[k] for k in ("ratio_vs_clip_sdpa", "ratio_vs_own_plain", "own_plain_vs_clip_sdpa",
                                      "measured_over_ideal")]
    ratios += [t[f"batch_{b}"]["images_per_s"] for b in t["batches"]]
    p = results["generation_processes"]
    ratios += [p[k] for k in ("speedup_generation", "speedup_wall", "speedup_generation_vs_1_thread",
                              "speedup_wall_vs_1_thread")]
    ratios += [c[k] for c in p["contenders"].values() for k in ("images_per_s_generation", "images_per_s_wall")]
    assert all(isinstance(r, float) and math.isfinite(r) and r > 0 for r in ratios), ratios


@pytest.mark.slow
def test_frozen_modules_hold_no_gradient_memory(quick_run):
    memory = quick_run[0]["memory"]
    assert memory["frozen_grad_bytes"] == 0
    assert all(memory["uniemo"]["grad_bytes"][g] == 0 for g in FROZEN_GROUPS)
    assert memory["uniemo"]["grad_bytes"]["trainable"] > 0
    # the official setting (UNet left at requires_grad=True) holds exactly the UNet's parameter bytes
    official = memory["official_unet_requires_grad"]
    assert official["grad_bytes"]["unet"] == official["parameter_bytes_by_frozen_group"]["unet"] > 0
    # ... and keeps them between steps: nothing clears the .grad of a parameter the optimizer does not own
    unet_bytes = official["parameter_bytes_by_frozen_group"]["unet"]
    assert official["held_before_step_bytes"] - memory["uniemo"]["held_before_step_bytes"] == unet_bytes
    for setting in (memory["uniemo"], official):
        assert setting["peak_bytes"] == setting["held_before_step_bytes"] + setting["peak_step_bytes"]
    assert memory["peak_ratio_official_over_uniemo"] > 1
    assert memory["sd15_unet_parameters"] == 859_520_964  # SD 1.5's UNet, counted on the meta device


def test_flop_arithmetic_on_a_hand_computable_geometry():
    # 4 px image, 2 px patches: P = 4 patches, T = 5 tokens; width 2, MLP 4; 1 scene + 1 object query
    config = EmoClassifierConfig(image_size=4, patch_size=2, width=2, layers=3, heads=1, mlp_ratio=2.0,
                                 num_scene_queries=1, num_object_queries=1, split_layers=(1, 2),
                                 interactive_layers=1, head_hidden=3, proj_dim=2, emotions=("a", "b"))
    # one block over N tokens: QKV 2*N*2*6 + scores/mix 2*(2*N*N*2) + out 2*N*2*2 + MLP 2*2*N*2*4 = 64N + 8N^2
    assert understanding.transformer_layer_flops(5, 2, 4) == 120 + 200 + 40 + 160 == 520
    assert understanding.transformer_layer_flops(6, 2, 4) == 672
    assert understanding.transformer_layer_flops(7, 2, 4) == 840
    # one query over 4 patches: q 8 + k,v 64 + out 8 + scores/mix 32 + MLP 32
    assert understanding.cross_attention_layer_flops(1, 4, 2, 4) == 144
    ours = understanding.classifier_flops(config)
    assert ours["stages"] == [[1, 6], [2, 7]]  # layer 1 sees CLS+4 patches+1 scene query, then +1 object query
    assert ours["patch_embed"] == 2 * 4 * 12 * 2 == 192
    assert ours["layers"] == 672 + 2 * 840
    assert ours["interactive_blocks"] == 2 * 144
    assert ours["head"] == 2 * 2 * 3 + 2 * 3 * 2 == 24
    assert ours["total"] == 192 + 2352 + 288 + 24 == 2856
    ratios = understanding.ideal_ratios(config)
    assert ratios["clip_sdpa"]["total"] == 192 + 3 * 520  # CLIPVisionModel: no emotion head
    assert ratios["own_plain"]["total"] == 192 + 3 * 520 + 24
    assert ratios["ideal_ratio_vs_clip_sdpa"] == pytest.approx(2856 / 1752)
    assert ratios["ideal_ratio_vs_own_plain"] == pytest.approx(2856 / 1776)
    # ViT-B/32: 50 tokens plain; 50+32 in layers 1..4, 50+64 in layers 5..12
    vit_b = EmoClassifierConfig.from_preset("vit-b-32")
    assert understanding.classifier_flops(vit_b)["stages"] == [[4, 82], [8, 114]]
    assert understanding.ideal_ratios(vit_b)["clip_sdpa"]["stages"] == [[12, 50]]


@pytest.mark.slow
def test_readme_table_is_regenerated_between_the_markers(quick_run):
    results, _, readme = quick_run
    text = readme.read_text()
    assert text.count(report.README_START) == 1 and text.count(report.README_END) == 1
    before, _, rest = text.partition("## Benchmarks")
    assert before == README.partition("## Citation")[0]  # inserted just before the citation
    assert rest.split(report.README_END, 1)[1] == "\n\n" + "## Citation" + README.partition("## Citation")[2]
    body = benchmark.render_table(results)
    assert body in text and "| Measure |" in body
    # idempotent: regenerating from the same results changes nothing
    benchmark.update_readme(readme, body)
    assert readme.read_text() == text
    # a new table replaces the old one and nothing else
    benchmark.update_readme(readme, "new table")
    changed = readme.read_text()
    assert changed.count(report.README_START) == 1 and body not in changed and "new table" in changed
    assert changed.replace("new table", body) == text
    readme.write_text(text)


def test_readme_without_citation_gets_the_section_at_the_end(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n\nText.\n")
    benchmark.update_readme(readme, "table")
    assert readme.read_text() == (f"# Title\n\nText.\n\n## Benchmarks\n\n{report.README_START}\ntable\n"
                                  f"{report.README_END}\n")


@pytest.mark.slow
def test_generation_on_one_and_two_processes(quick_run):
    results = quick_run[0]
    p, quick = results["generation_processes"], BenchmarkSettings.quick()
    plan, rounds = p["plan"], quick.processes_rounds
    model_emotions = json.loads((ROOT / "assets" / "uniemo-tiny" / "uniemo.json").read_text())["emotions"]
    assert plan["emotions"] == model_emotions[:quick.processes_emotions]
    assert plan["images"] == len(plan["emotions"]) * quick.processes_per_emotion == 4
    assert plan["steps"] == quick.processes_steps and plan["batch_size"] == quick.processes_batch_size
    assert plan["pipeline_calls"] == 4  # batch size 1: one call per image, 2 per process under torchrun
    assert p["rounds"] == rounds and p["warmup"] == quick.processes_warmup
    assert p["contenders"].keys() == generation_processes.CONTENDERS.keys()
    for name, c in p["contenders"].items():
        processes, threads = generation_processes.CONTENDERS[name]
        assert (c["processes"], c["threads_per_process"]) == (processes, threads)
        # every timed run made the whole plan in its own fresh folder, with the process count it was given
        assert c["images_written"] == c["generated_now"] == [plan["images"]] * rounds
        assert c["num_processes_recorded"] == [processes] * rounds
        wall, generation = c["wall_seconds"]["all_s"], c["generation_seconds"]["all_s"]
        assert len(wall) == len(generation) == rounds
        assert all(0 < g < w for g, w in zip(generation, wall))  # generation.json's seconds lie inside the command
        assert c["images_per_s_generation"] == round(plan["images"] / statistics.median(generation), 4)
        assert c["images_per_s_wall"] == round(plan["images"] / statistics.median(wall), 4)
        assert c["images_per_s_wall"] < c["images_per_s_generation"]
        assert c["startup_seconds_median"] > 0
    contenders = p["contenders"]
    assert "torch.distributed.run" in contenders[p["sharded"]]["command"]
    assert "torch.distributed.run" not in contenders[p["baseline"]]["command"]
    # two processes write the images of one process pixel for pixel; 2 threads write the same files
    assert contenders[p["sharded"]]["max_pixel_difference_vs_reference"] == [0] * rounds
    assert contenders[p["reference"]]["max_pixel_difference_vs_reference"] == [0] * rounds
    assert None not in contenders[p["baseline"]]["max_pixel_difference_vs_reference"]
    assert p["two_processes_write_the_images_of_one"] is True
    assert results["checks"]["two_processes_write_the_images_of_one"] is True
    body = benchmark.render_table(results)
    assert "images on 2 processes, 1 thread each (torchrun): images/s, generation only" in body
    assert "whole command, start-up included" in body


def test_generation_subprocess_environment_and_commands(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("MASTER_PORT", "1234")
    env = generation_processes.child_environment(2)
    assert "WORLD_SIZE" not in env and "MASTER_PORT" not in env  # a child never joins an enclosing launch
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "2" and env["HF_HUB_OFFLINE"] == "1"
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(ROOT)  # this checkout's uniemo
    script = ROOT / "eval" / "generate.py"
    assert generation_processes.command(script, 1, ["--out", "x"]) == [sys.executable, str(script), "--out", "x"]
    two = generation_processes.command(script, 2, ["--out", "x"])
    assert two[:4] == [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    assert two[4:] == ["--nproc_per_node", "2", str(script), "--out", "x"]
