"""Speed and memory of UniEmo against plain baselines measured in the same process (eval/benchmark.py).

One module per measurement, each returning a JSON-able dict of seconds, ratios and bytes:

    understanding   the classifier's forward against transformers' CLIPVisionModel and our own plain tower, with
                    the ideal ratio from matmul FLOPs and a per-stage time/FLOP breakdown
    generation      ``UniEmoPipeline.generate`` against the stock diffusers pipeline with a text prompt
    training        images per second of one joint step at two batch sizes, and the memory of one step
    demo            classify and generate on UniEmo-Tiny as the demo's pages do, against the bare forward and
                    the stock pipeline
    generation_processes
                    eval/generate.py on UniEmo-Tiny as subprocesses: 1 process (2 threads, 1 thread) against
                    2 processes under torchrun, images per second and the images they write

``suite`` runs them all and records the machine, ``settings`` holds the sizes (``BenchmarkSettings.full()`` /
``quick()``) and the targets, ``timing`` the interleaved rounds every ratio comes from, ``random_model`` the
random-weight UniEmo they run on, and ``report`` the README table. Light modules (``settings``, ``report``)
import no torch.
"""
