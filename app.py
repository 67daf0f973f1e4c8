"""UniEmo demo: ``python app.py [--model DIR_OR_REPO] [--reasoner DIR|none] [--device auto|cpu|cuda] [--share]``.

The model comes from ``--model``, else ``$UNIEMO_MODEL``, else the bundled UniEmo-Tiny in ``assets/``; a UniEmo
model folder or Hub repo, or an EmoSym model folder (one with ``emosym.json``, written by
``train/emosym_generate.py``), whose Understand tab gives the nearest rationales instead of attention maps. With
both bundles (the default), the bundled EmoSym-Tiny serves as the *reasoner*: the Understand tab adds its
rationales below UniEmo-Tiny's attributes (``--reasoner``: another EmoSym folder, or ``none``). Models are
loaded once, before the page is built. Host and port follow ``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT``
(127.0.0.1:7860 by default; Spaces sets them itself). The page lives in ``demo/ui.py``, the logic in
``demo/handlers.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

BUNDLED_MODEL = Path(__file__).resolve().parent / "assets" / "uniemo-tiny"
BUNDLED_REASONER = Path(__file__).resolve().parent / "assets" / "emosym-tiny"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The UniEmo demo (a Gradio page).")
    parser.add_argument("--model", help="model folder or Hub repo id (default: $UNIEMO_MODEL, else the bundled "
                                         f"UniEmo-Tiny at {BUNDLED_MODEL})")
    parser.add_argument("--reasoner", help="an EmoSym model folder whose rationales the Understand tab adds to a "
                                            "UniEmo model's attributes (default: the bundled EmoSym-Tiny when the "
                                            "bundled UniEmo-Tiny is served; 'none': no reasoner)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--share", action="store_true", help="also serve through a public gradio.live link")
    args = parser.parse_args(argv)
    model = args.model or os.environ.get("UNIEMO_MODEL") or str(BUNDLED_MODEL)
    if model == str(BUNDLED_MODEL) and not BUNDLED_MODEL.is_dir():
        sys.exit(f"error: no model given and the bundled UniEmo-Tiny is missing at {BUNDLED_MODEL}; pass --model "
                 "DIR, set UNIEMO_MODEL, or build it with: python -m train.tiny_world --out assets/uniemo-tiny")

    # heavy imports after argument parsing, so --help stays instant
    from uniemo import UniEmoPipeline
    from uniemo.emosym.pipeline import EmoSymPipeline

    # an EmoSym folder (emosym.json) loads as EmoSym: its Understand tab says why, in a sentence
    kind = EmoSymPipeline if (Path(model) / "emosym.json").is_file() else UniEmoPipeline
    try:
        pipe = kind.from_pretrained(model, device=args.device)
    except (FileNotFoundError, ValueError, RuntimeError) as e:  # no folder, bad folder, no CUDA
        sys.exit(f"error: cannot load the model {model!r}: {e}")
    reasoner_dir = args.reasoner
    both_bundled = Path(model).resolve() == BUNDLED_MODEL and (BUNDLED_REASONER / "emosym.json").is_file()
    if reasoner_dir is None and both_bundled:
        reasoner_dir = str(BUNDLED_REASONER)  # the Understand tab also says why, in sentences
    reasoner = None
    if reasoner_dir and reasoner_dir != "none":
        if kind is EmoSymPipeline:
            sys.exit("error: --reasoner adds EmoSym's rationales to a UniEmo model; the model is EmoSym already")
        try:
            reasoner = EmoSymPipeline.from_pretrained(reasoner_dir, device=args.device)
        except (FileNotFoundError, ValueError, RuntimeError) as e:
            sys.exit(f"error: cannot load the reasoner {reasoner_dir!r}: {e}")

    from demo.about import model_fingerprint
    from demo.ui import MAX_FILE_SIZE, QUEUE_MAX_SIZE, build_demo

    # Cached example outputs are stored per model (and reasoner), so switching models never shows another model's
    # results.
    fingerprint = model_fingerprint(pipe) + (f"+{model_fingerprint(reasoner)}" if reasoner is not None else "")
    os.environ.setdefault("GRADIO_EXAMPLES_CACHE", str(Path(".gradio/cached_examples") / fingerprint))
    demo = build_demo(pipe, reasoner).queue(max_size=QUEUE_MAX_SIZE, default_concurrency_limit=1)
    demo.launch(share=args.share, max_file_size=MAX_FILE_SIZE)


if __name__ == "__main__":
    main()
