"""FID on CLIP image embeddings (``--fid-feature-extractor clip``): ~0 for a set against itself, grows with a shift."""

import torch

from uniemo.clip import build_tiny_clip
from uniemo.features import clip_fid_extractor
from uniemo.metrics import feature_statistics, frechet_distance


def test_clip_fid_self_zero_and_grows_with_shift(tmp_path):
    model, tokenizer = build_tiny_clip()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    extract = clip_fid_extractor(str(tmp_path), torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    base = torch.randint(0, 160, (64, 3, 32, 32), generator=g, dtype=torch.uint8)
    feats = extract(base)[0].double()
    assert frechet_distance(*feature_statistics(feats), *feature_statistics(feats)) < 1e-6
    distances = []
    for shift in (20, 60):
        shifted = extract((base.int() + shift).clamp(0, 255).to(torch.uint8))[0].double()
        distances.append(frechet_distance(*feature_statistics(feats), *feature_statistics(shifted)))
    assert 0 < distances[0] < distances[1]
