"""Explicit feedback's dual-metric rank-band filter (paper III-C, Algorithm 1; docs/method.md section 7).

Each generated image carries two scores: P_emo, the emotion probe's probability of the intended emotion,
and S_sem, its semantic clarity (the highest zero-shot CLIP probability over the attribute base). Both
rankings are computed separately and an image is kept when its rank lies inside the band
[η %, δ %) of **both** rankings: with η = 20 and δ = 80 the top 20 % and the bottom 20 % of each ranking
are dropped (too easy or already typical, and unrecognisable).

Paper symbol -> code name:
    P_emo, S_sem            -> ``emotion_scores``, ``semantic_scores``
    R_emo, R_sem            -> ``score_ranks(...)`` (rank of each item, 0 = best)
    η, δ                    -> ``eta``, ``delta`` (percent)
    I_filtered              -> the returned kept indices

The band rule, fixed here and tested (tests/test_filtering.py):

- **Ranks**: scores are sorted in descending order with a *stable* sort, so among equal scores the item
  that comes first in the input gets the better (smaller) rank. Rank 0 is the highest score.
- **Band edges**: Algorithm 1 line 15 slices the sorted index list as ``R[η% : δ%]``; we read the
  percentages as Python slice bounds rounded down. With n items an item of rank r is kept iff
  ``floor(n·η/100) <= r < floor(n·δ/100)``. For n = 10, η = 20, δ = 80 that is ranks 2..7 (six items); for
  n = 7 it is ranks 1..4 (``floor(1.4) = 1``, ``floor(5.6) = 5``). The products are computed exactly from
  the decimal value of η and δ, so ``n·η/100`` never falls just below an integer by rounding.
- **Groups**: with ``groups`` (e.g. the intended emotion of each image) the bands are computed inside each
  group separately, so an emotion whose probe probabilities are low overall is not dropped wholesale.
- NaN scores are rejected (a NaN has no rank).

Nothing here is adapted from another repository.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import torch

ScoreArray = Sequence[float] | np.ndarray | torch.Tensor


def _as_array(scores: ScoreArray, name: str) -> np.ndarray:
    array = scores.detach().cpu().double().numpy() if isinstance(scores, torch.Tensor) else np.asarray(scores, float)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one score per item (1-D), got shape {array.shape}")
    if np.isnan(array).any():
        raise ValueError(f"{name} holds NaN at index {int(np.flatnonzero(np.isnan(array))[0])}: a NaN has no rank")
    return array


def score_ranks(scores: ScoreArray) -> np.ndarray:
    """The rank of every item, 0 for the highest score; ties broken by input order (stable sort).

    Args:
        scores: (n,) scores, higher is better.

    Returns:
        (n,) int64 ranks, a permutation of 0..n-1.
    """
    array = _as_array(scores, "scores")
    order = np.argsort(-array, kind="stable")  # descending; equal scores keep their input order
    ranks = np.empty(len(array), dtype=np.int64)
    ranks[order] = np.arange(len(array))
    return ranks


def rank_band(n: int, eta: float, delta: float) -> tuple[int, int]:
    """The kept ranks [lo, hi) of n items: ``lo = floor(n·η/100)``, ``hi = floor(n·δ/100)``.

    Computed exactly from the decimal values of ``eta`` and ``delta`` (``Fraction(str(x))``).
    """
    check_band(eta, delta)
    lo = Fraction(n) * Fraction(str(float(eta))) / 100
    hi = Fraction(n) * Fraction(str(float(delta))) / 100
    return int(lo), int(hi)  # int() of a non-negative Fraction rounds down


def check_band(eta: float, delta: float) -> None:
    """Raise ``ValueError`` unless 0 <= η <= δ <= 100 (percent)."""
    if not 0.0 <= eta <= delta <= 100.0:
        raise ValueError(f"need 0 <= eta <= delta <= 100 (percent), got eta={eta}, delta={delta}")


def select_feedback(
    emotion_scores: ScoreArray,
    semantic_scores: ScoreArray,
    eta: float = 20.0,
    delta: float = 80.0,
    groups: Sequence[int] | np.ndarray | torch.Tensor | None = None,
) -> list[int]:
    """Algorithm 1: the items inside the [η %, δ %) rank band of both rankings.

    Args:
        emotion_scores: (n,) P_emo of each generated image (higher = more clearly the intended emotion).
        semantic_scores: (n,) S_sem of each image (higher = clearer content).
        eta: the top η % of each ranking is dropped (percent, default 20).
        delta: items ranked at or below δ % are dropped (percent, default 80).
        groups: optional (n,) group id per item (the intended emotion); bands are then computed within each
            group, ranks too.

    Returns:
        The kept item indices, ascending (deterministic for given scores).
    """
    p_emo = _as_array(emotion_scores, "emotion_scores")
    s_sem = _as_array(semantic_scores, "semantic_scores")
    if len(p_emo) != len(s_sem):
        raise ValueError(f"{len(p_emo)} emotion scores but {len(s_sem)} semantic scores")
    check_band(eta, delta)
    if groups is None:
        members = [np.arange(len(p_emo))]
    else:
        group_ids = np.asarray(groups.cpu() if isinstance(groups, torch.Tensor) else groups)
        if group_ids.shape != p_emo.shape:
            raise ValueError(f"groups must have one id per item ({len(p_emo)}), got shape {group_ids.shape}")
        members = [np.flatnonzero(group_ids == g) for g in np.unique(group_ids)]
    kept: list[int] = []
    for idx in members:
        lo, hi = rank_band(len(idx), eta, delta)
        inside = np.ones(len(idx), dtype=bool)
        for scores in (p_emo[idx], s_sem[idx]):
            ranks = score_ranks(scores)
            inside &= (ranks >= lo) & (ranks < hi)
        kept += idx[inside].tolist()
    return sorted(int(i) for i in kept)
