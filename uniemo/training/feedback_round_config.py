"""The options of one explicit-feedback round (``uniemo.training.feedback_round.run_feedback_round``, the command
line ``train/feedback.py``). No torch import here."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FeedbackRoundConfig:
    model: str = ""  # UniEmo model folder (train/joint.py's final/)
    probe: str = ""  # train/probe.py run folder: the α probe in probe/ and its CLIP in config.yaml
    clip: str | None = None  # override the probe's CLIP (Hub id or folder); null: the one the probe was trained on
    out_dir: str = "runs/feedback"
    per_emotion: int = 100  # M candidates per emotion
    eta: float = 20.0  # η: the top η % of each ranking is dropped
    delta: float = 80.0  # δ: ranks at or below δ % are dropped
    bands: str = "per_emotion"  # per_emotion (rank within each emotion's candidates) | global (Alg. 1 over all)
    seed: int = 0  # S of the candidate seeds
    steps: int | None = None  # sampler steps; null: the model's recommended setting, else the official 50
    guidance: float | None = None  # null: the model's, else 7.5
    scheduler: str | None = None  # null: the model's, else unipc
    size: int | None = None  # null: the model's resolution
    batch_size: int = 8  # images per pipeline call
    score_batch_size: int = 64  # images per CLIP forward
    device: str = "auto"

    def validate(self) -> None:
        if not self.model:
            raise ValueError("model is not set: pass model=<UniEmo model folder> (train/joint.py's final/)")
        if not self.probe:
            raise ValueError("probe is not set: pass probe=<train/probe.py run folder> (the α probe and its CLIP)")
        if not 0.0 <= self.eta <= self.delta <= 100.0:
            raise ValueError(f"need 0 <= eta <= delta <= 100, got eta={self.eta}, delta={self.delta}")
        if self.bands not in ("per_emotion", "global"):
            raise ValueError(f"bands must be per_emotion or global, got {self.bands!r}")
        if self.per_emotion < 1:
            raise ValueError(f"per_emotion must be >= 1, got {self.per_emotion}")
