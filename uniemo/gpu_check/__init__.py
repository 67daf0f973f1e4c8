"""The GPU check of ``eval/gpu_check.py``: stage-2 training and generation at the real models' geometry, with
random weights, on one CUDA GPU (or at tiny geometry on the CPU, for tests).

    models       ``GpuCheckSettings`` (what to measure), ``build_models`` (SD 1.5 + ViT-L/14 or tiny),
                 ``geometry``
    measure      ``Device``: synchronised timing and peak memory; ``environment``; ``ratio``, ``gib``, ``log``
    training     (a) stage-2 steps per precision, batch and checkpointing, and (c) the official code's setting
    generation   (b) ``UniEmoPipeline.generate`` against the stock diffusers pipeline

This file imports nothing, so that the script answers ``--help`` before torch loads.
"""
