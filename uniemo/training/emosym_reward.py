"""EmoSym step 2, verifiable reinforcement: the policy (step 1's model: LoRA, the two token rows and cls_head
trained) against a frozen copy of it (the reference), with ``uniemo.emosym.losses.reward_loss``:
CE − (mean(r · p(y)) − β · KL(p ‖ p_ref)), β adaptive. The model is selected on the validation split's top-1 and
written to ``<out_dir>/final`` (an EmoSym model folder, its rationale base carried over from step 1).
"""

from __future__ import annotations

from pathlib import Path

import torch

from uniemo.emosym.losses import reward_loss
from uniemo.emosym.model_folder import load_emosym, read_descriptor, save_emosym
from uniemo.training.emosym_config import EmoSymRewardConfig
from uniemo.training.emosym_loop import emosym_datasets, train_emosym
from uniemo.training.run import start_run


def run_reward(cfg: EmoSymRewardConfig) -> dict:
    """Train step 2 from ``model.init`` and write ``<out_dir>/final``; returns the final figures."""
    cfg.validate()
    accelerator = start_run(cfg, cfg.out_dir, "emosym-reward")
    train_set, val_set, _ = emosym_datasets(cfg.data)
    policy, base, _ = load_emosym(cfg.model.init, cfg.model.dtype, trainable=True)
    policy.set_trainable("reward")
    reference, _, _ = load_emosym(cfg.model.init, cfg.model.dtype)
    reference.requires_grad_(False)
    reference.to(accelerator.device)
    info = {**read_descriptor(cfg.model.init), "step": "reward", "init": cfg.model.init}
    info.pop("format_version", None)

    def batch_loss(model, inputs, batch):
        with torch.no_grad():
            reference_logits = reference(**inputs).logits
        terms = reward_loss(model(**inputs).logits, reference_logits, batch["labels"].to(reference_logits.device))
        return terms.loss, {"ce": terms.ce, "reward": terms.reward_objective, "kl": terms.kl,
                            "beta": terms.beta, "mean_reward": terms.mean_reward}

    def save_best(core, top1, step):
        save_emosym(Path(cfg.out_dir) / "final", core, base, {**info, "best_val_top1": top1, "best_step": step})

    return train_emosym(cfg, accelerator, policy, train_set, val_set, "EmoSym step 2", batch_loss, save_best)
