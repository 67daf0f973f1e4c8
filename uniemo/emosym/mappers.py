"""EmoSym's two mappers: the ``[EMO]`` and ``[CTX]`` hidden states into the diffusion text encoder's token space.

    c = emo_mapper(h_EMO) + ctx_weight · ctx_mapper(h_CTX)          (B, text_width)

Each mapper is Linear(H, hidden) -> ReLU -> Linear(hidden, text_width). c replaces the placeholder token's
embedding per sample (``uniemo.diffusion.encode_condition``, the same injection as UniEmo's). The authors' code
trains with both branches summed and generates with the reasoning branch at 0.01; here one ``ctx_weight`` serves
training and generation alike (1 by default), and ``forward(ctx_weight=...)`` overrides it at generation.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from uniemo.checkpoint import PretrainedMixin


@dataclass
class EmoSymMapperConfig:
    hidden_size: int  # the MLLM's width H (1536 for Qwen2-VL-2B)
    text_width: int = 768  # the diffusion text encoder's token width (SD 1.5: 768)
    mapper_hidden: int = 1024
    ctx_weight: float = 1.0


class EmoSymMappers(nn.Module, PretrainedMixin):
    config_class = EmoSymMapperConfig

    def __init__(self, config: EmoSymMapperConfig):
        super().__init__()
        self.config = config

        def mlp() -> nn.Sequential:
            return nn.Sequential(nn.Linear(config.hidden_size, config.mapper_hidden), nn.ReLU(),
                                 nn.Linear(config.mapper_hidden, config.text_width))

        self.emo_mapper, self.ctx_mapper = mlp(), mlp()

    def forward(self, emo: Tensor, ctx: Tensor, ctx_weight: float | None = None) -> Tensor:
        w = self.config.ctx_weight if ctx_weight is None else ctx_weight
        dtype = self.emo_mapper[0].weight.dtype
        return self.emo_mapper(emo.to(dtype)) + w * self.ctx_mapper(ctx.to(dtype))
