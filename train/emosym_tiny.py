"""Build EmoSym-Tiny on a CPU from a UniEmo-Tiny build's world (its EmoShapes, tiny CLIP and tiny SD): the tiny
Qwen2-VL pretrained on EmoShapes captions, then EmoSym's steps 1-3 through their own runs, then the bundle.

    python -m train.emosym_tiny world=runs/tiny-world --out assets/emosym-tiny diffusion_path=../uniemo-tiny/diffusion
    python -m train.emosym_tiny world=runs/tiny-world-smoke --smoke --out /tmp/emosym-tiny-smoke

``--smoke`` shrinks every step (a minute or two, for CI). The bundle loads with
``uniemo.emosym.pipeline.EmoSymPipeline.from_pretrained`` and in the demo (``python app.py --model DIR``).
"""

from __future__ import annotations

import sys

from uniemo.config import build_config, overrides_to_dict, parse_config
from uniemo.training.emosym_config import EmoSymTinyConfig


def main(argv: list[str] | None = None) -> dict:
    command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    words, i = [], 0
    while i < len(argv):  # --out DIR and --smoke as train/tiny_world.py takes them; everything else is key=value
        if argv[i] == "--out" and i + 1 < len(argv):
            words.append(f"out={argv[i + 1]}")
            i += 2
        else:
            words.append("smoke=true" if argv[i] == "--smoke" else argv[i])
            i += 1
    cfg = parse_config(EmoSymTinyConfig, words, description=__doc__, exit_on_error=command_line)
    from uniemo.training.emosym_tiny import SMOKE, build_emosym_tiny

    if cfg.smoke:  # the smoke step counts replace the defaults; key=value words still win over them
        cfg = build_config(EmoSymTinyConfig, overrides={**SMOKE, **overrides_to_dict(words)})
    return build_emosym_tiny(cfg)


if __name__ == "__main__":
    main()
