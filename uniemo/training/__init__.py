"""Training plumbing shared by the recipes in ``train/``: configs, schedules, checks and the stage-2 step.

The modules here are imported by the scripts *after* they parse their arguments (``data_config`` and
``checks`` need no torch), so every script's ``--help`` answers at once.
"""
