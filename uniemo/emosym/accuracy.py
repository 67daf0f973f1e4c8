"""Top-1 of an EmoSym model folder on a dataset split, outside training (the builder's before/after of the
reward step, the EmoSym-Tiny report): the [EMO] head's argmax against the split's labels."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader

from uniemo.data import build_dataset, collate_records
from uniemo.emosym.model_folder import load_emosym


@torch.no_grad()
def emosym_accuracy(folder: str | Path, dataset: str, root: str | Path, split: str = "test",
                    batch_size: int = 64) -> dict:
    """{"top1", "num_images", "per_class"} of the model in ``folder`` on ``split`` of ``dataset`` at ``root``
    (fp32, on the CPU; ``per_class`` maps each emotion to its recall)."""
    model, _, info = load_emosym(folder)
    data = build_dataset(dataset, root, split)
    predictions, labels = [], []
    for batch in DataLoader(data, batch_size=batch_size, collate_fn=collate_records):
        predictions.append(model(**model.encode(batch["pixel_values"])).logits.argmax(-1))
        labels.append(batch["labels"])
    predictions, labels = torch.cat(predictions), torch.cat(labels)
    emotions = info["emotions"]
    per_class = {e: float((predictions[labels == i] == i).float().mean()) if (labels == i).any() else None
                 for i, e in enumerate(emotions)}
    top1 = float((predictions == labels).float().mean())
    return {"top1": top1, "num_images": len(labels), "per_class": per_class}
