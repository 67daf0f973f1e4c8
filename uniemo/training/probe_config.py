"""The options of a probe run (``uniemo.training.probe_table.run_probe``, the command line ``train/probe.py``):
the emotion probe on frozen CLIP image embeddings and the α table built from it. No torch import here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from uniemo.training.data_config import DataConfig  # the same data options as stages 1 and 2


@dataclass
class ProbeModelConfig:
    clip: str | None = "openai/clip-vit-base-patch32"  # Hub id or local folder; null = random tiny CLIP
    preset: str = "vit-b-32"  # geometry of the random CLIP when clip is null (tiny for smoke runs)


@dataclass
class ProbeConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ProbeModelConfig = field(default_factory=ProbeModelConfig)
    probe_layers: int = 2  # 2: the α probe (Linear, ReLU, Linear); 1: the Emo-A scorer (one Linear)
    probe_hidden: int = 512  # hidden width of the two-layer probe
    epochs: int = 30  # passes over the cached embeddings (cheap: the CLIP forward happens once)
    lr: float = 1e-3  # AdamW peak learning rate, cosine-decayed to 0; 1e-4 .. 1e-2
    weight_decay: float = 1e-4
    batch_size: int = 256  # embeddings per probe step
    embed_batch_size: int = 64  # images per CLIP forward
    build_table: bool = True  # false: train and save the probe only (an Emo-A scorer run)
    alpha_mode: str = "prob"  # prob: mean p(e|I) (default); log: softmax of the mean log p(e|I) (Eq. 5)
    min_count: int = 1  # attributes carried by fewer training images are left out of the table
    device: str = "auto"  # auto (cuda when available) | cpu | cuda | cuda:N
    seed: int = 0
    out_dir: str = "runs/probe"

    def validate(self) -> None:
        if self.probe_layers < 1:
            raise ValueError(
                f"probe_layers must be 2 (the α probe) or 1 (the Emo-A scorer), got {self.probe_layers}"
            )
        if self.alpha_mode not in ("prob", "log"):
            raise ValueError(f"alpha_mode must be prob or log, got {self.alpha_mode!r}")
        if self.min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {self.min_count}")
        if self.epochs < 1 or self.batch_size < 1 or self.embed_batch_size < 1:
            raise ValueError("epochs, batch_size and embed_batch_size must be >= 1")
