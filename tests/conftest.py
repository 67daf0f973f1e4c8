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


@pytest.fixture
def tiny_classifier():
    from uniemo.classifier import EmoClassifier, EmoClassifierConfig

    torch.manual_seed(0)
    return EmoClassifier(EmoClassifierConfig.tiny())


@pytest.fixture(autouse=True)
def _reset_accelerate_state():
    """accelerate's AcceleratorState is a process-wide singleton; reset it around every test."""
    yield
    try:
        from accelerate.state import AcceleratorState, GradientState

        AcceleratorState._reset_state(True)
        GradientState._reset_state()
    except Exception:  # accelerate not imported by this test
        pass
