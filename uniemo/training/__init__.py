"""Training: the loops of stage 1 (``stage1.run_stage1``), the probe and α table (``probe_table.run_probe``) and
stage 2 (``joint.run_joint``), the plumbing they share (``run``: accelerator, metrics log, progress, checkpoints),
their building blocks, and the UniEmo-Tiny pretraining.

The option dataclasses (``*_config``) and ``checks`` import no torch: the command lines in ``train/`` parse and
check their arguments with them, and import a loop only after that, so every ``--help`` answers at once.
"""
