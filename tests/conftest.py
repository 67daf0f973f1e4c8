"""Shared fixtures. Every test runs offline (HF_HUB_OFFLINE=1) on the CPU with tiny models."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))


def run_torchrun(script, args, nproc: int = 2, timeout: int = 600):
    """``torchrun --nproc_per_node nproc script args`` on a free port (gloo, 1 thread per process).

    On failure the assertion message holds every traceback the processes printed (not just the launcher's tail,
    which hides the rank that failed first).
    """
    import re
    import socket
    import subprocess
    import sys
    from pathlib import Path

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_port", str(port),
           str(script), *args]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        lines = [line for line in (result.stdout + "\n" + result.stderr).splitlines()
                 if "it/s" not in line and "s/it" not in line]
        # torchrun prefixes what each worker prints with "[rankN]:"; the launcher's own traceback has no prefix
        # and only says that a child failed, so the workers' lines come first
        ranks = {}
        for line in lines:
            match = re.match(r"\[rank(\d+)\]:(.*)", line)
            if match:
                ranks.setdefault(match.group(1), []).append(match.group(2))
        detail = "\n---\n".join(f"rank {r}:\n" + "\n".join(out)[-3000:] for r, out in sorted(ranks.items()))
        launcher = "\n".join(line for line in lines if not line.startswith("[rank"))
        raise AssertionError(f"torchrun exited with {result.returncode}:\n{detail}\n--- launcher:\n{launcher[-1500:]}")
    return result


@pytest.fixture
def tiny_classifier():
    from uniemo.classifier import EmoClassifier, EmoClassifierConfig

    torch.manual_seed(0)
    return EmoClassifier(EmoClassifierConfig.tiny())


@pytest.fixture(autouse=True)
def _reset_accelerate_state():
    """accelerate's AcceleratorState is a process-wide singleton; reset it around every test (also before it:
    the session fixtures this test asked for may have just trained with another precision)."""

    def reset():
        try:
            from accelerate.state import AcceleratorState, GradientState

            AcceleratorState._reset_state(True)
            GradientState._reset_state()
        except Exception:  # accelerate not imported by this test
            pass

    reset()
    yield
    reset()


def write_learnable_emoset(root, per_class_train=24, per_class_val=8, size=32, seed=0):
    """A small EmoSet-layout image set whose emotion is learnable: each class has its own colour pair,
    drawn as a background and a square at a random place; scenes and objects follow the class too."""
    import json
    from pathlib import Path

    import numpy as np
    from PIL import Image

    from uniemo.constants import EMOTIONS

    root = Path(root)
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, (len(EMOTIONS), 2, 3))
    scenes = ["sky", "sea", "forest", "room"]
    objects = ["balloon", "skull", "cake", "spider", "flower", "knife"]
    splits = {"train": [], "val": [], "test": []}
    counts = {"train": per_class_train, "val": per_class_val, "test": per_class_val}
    number = 0
    for split, n in counts.items():
        for label, emotion in enumerate(EMOTIONS):
            for _ in range(n):
                bg, fg = palette[label]
                img = np.clip(bg + rng.normal(0, 12, (size, size, 3)), 0, 255)
                x, y = rng.integers(0, size // 2, 2)
                img[y:y + size // 2, x:x + size // 2] = fg
                name = f"{emotion}_{number:05d}"
                number += 1
                (root / "image" / emotion).mkdir(parents=True, exist_ok=True)
                (root / "annotation" / emotion).mkdir(parents=True, exist_ok=True)
                Image.fromarray(img.astype("uint8")).save(root / "image" / emotion / f"{name}.jpg", quality=95)
                ann = {"scene": scenes[label % 4], "object": [objects[label % 6]]}
                if rng.random() < 0.2:
                    ann.pop("scene")  # some images lack a scene
                (root / "annotation" / emotion / f"{name}.json").write_text(json.dumps(ann))
                splits[split].append([emotion, f"image/{emotion}/{name}.jpg", f"annotation/{emotion}/{name}.json"])
    for split, entries in splits.items():
        (root / f"{split}.json").write_text(json.dumps(entries))
    info = {"emotion": {"label2idx": {e: i for i, e in enumerate(EMOTIONS)},
                        "idx2label": {str(i): e for i, e in enumerate(EMOTIONS)}}}
    (root / "info.json").write_text(json.dumps(info))
    return root


@pytest.fixture(scope="session")
def learnable_emoset(tmp_path_factory):
    return write_learnable_emoset(tmp_path_factory.mktemp("learnable_emoset"))


@pytest.fixture(scope="session")
def tiny_sd_dir(tmp_path_factory):
    """A tiny Stable Diffusion saved in the diffusers layout (loaded back through the real SD code path)."""
    from uniemo.diffusion import build_tiny_stable_diffusion

    path = tmp_path_factory.mktemp("tiny_sd")
    build_tiny_stable_diffusion().save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_stage1_dir(tmp_path_factory, learnable_emoset):
    from train.understanding import main

    out = tmp_path_factory.mktemp("stage1")
    main(["--preset", "tiny", f"data.root={learnable_emoset}", f"out_dir={out}", "max_steps=4", "eval_every=4"])
    return out / "final"


@pytest.fixture(scope="session")
def tiny_correlation_dir(tmp_path_factory, learnable_emoset):
    from train.probe import main

    out = tmp_path_factory.mktemp("probe")
    main(["--preset", "tiny", f"data.root={learnable_emoset}", f"out_dir={out}"])
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, learnable_emoset, tiny_sd_dir, tiny_stage1_dir, tiny_correlation_dir):
    """A complete UniEmo model folder from the tiny stage 1, probe/α and stage 2 (a few steps each)."""
    from train.joint import main

    out = tmp_path_factory.mktemp("joint")
    main(["--preset", "tiny", f"data.root={learnable_emoset}", f"out_dir={out}", f"model.stage1={tiny_stage1_dir}",
          f"model.diffusion={tiny_sd_dir}", f"model.correlation={tiny_correlation_dir}", "max_steps=2",
          "validation_every=0"])
    return out / "final"
