"""uniemo.filtering: Algorithm 1's rank bands, with the tie and edge rules of its docstring."""

import numpy as np
import pytest
import torch

from uniemo.filtering import rank_band, score_ranks, select_feedback


def test_kept_items_are_exactly_those_inside_both_bands():
    # n = 10, η = 20, δ = 80: ranks 2..7 are kept in each ranking
    emotion = [0.95, 0.90, 0.80, 0.70, 0.60, 0.50, 0.40, 0.30, 0.20, 0.10]  # ranks 0..9 in index order
    semantic = [0.50, 0.60, 0.95, 0.90, 0.70, 0.40, 0.80, 0.30, 0.20, 0.10]
    # semantic ranks: idx2:0 idx3:1 idx6:2 idx4:3 idx1:4 idx0:5 idx5:6 idx7:7 idx8:8 idx9:9
    # emotion band {2..7}; semantic band {6, 4, 1, 0, 5, 7} -> both: {4, 5, 6, 7}
    assert select_feedback(emotion, semantic) == [4, 5, 6, 7]
    assert select_feedback(torch.tensor(emotion), np.array(semantic), eta=20, delta=80) == [4, 5, 6, 7]


def test_band_edges_follow_the_floor_slice_rule():
    assert rank_band(10, 20, 80) == (2, 8)
    assert rank_band(7, 20, 80) == (1, 5)  # floor(1.4), floor(5.6)
    assert rank_band(5, 20, 80) == (1, 4)
    assert rank_band(3, 20, 80) == (0, 2)
    assert rank_band(100, 0, 100) == (0, 100)
    # exact decimal arithmetic: 0.1 * 30 is 3, not 2.9999...
    assert rank_band(30, 10.0, 70.0) == (3, 21)
    scores = list(range(7, 0, -1))  # descending: item i has rank i
    assert select_feedback(scores, scores) == [1, 2, 3, 4]
    assert select_feedback(scores, scores, eta=0, delta=100) == list(range(7))
    assert select_feedback(scores, scores, eta=50, delta=50) == []
    assert select_feedback([], []) == []


def test_ties_go_to_the_earlier_item():
    ranks = score_ranks([0.5, 0.9, 0.5, 0.5, 0.1])
    assert ranks.tolist() == [1, 0, 2, 3, 4]
    # all equal: rank = input position, so the band is a contiguous run of indices
    flat = [0.3] * 10
    assert select_feedback(flat, flat) == [2, 3, 4, 5, 6, 7]


def test_groups_rank_within_each_group_and_output_is_sorted():
    scores = [0.9, 0.1, 0.8, 0.2, 0.7, 0.3, 0.6, 0.4, 0.5, 0.45]
    groups = [0, 1] * 5
    # n = 5 per group: ranks 1..3 kept. Group 0 (idx 0 2 4 6 8) ranks in index order -> idx 2, 4, 6;
    # group 1 (idx 1 3 5 7 9) ranks descending .45 .4 .3 .2 .1 = idx 9 7 5 3 1 -> idx 7, 5, 3.
    kept = select_feedback(scores, scores, groups=groups)
    assert kept == [2, 3, 4, 5, 6, 7]
    # ranked together (.9 .8 .7 .6 .5 .45 .4 .3 .2 .1 = idx 0 2 4 6 8 9 7 5 3 1), ranks 2..7 -> idx 4 6 8 9 7 5
    assert select_feedback(scores, scores) == [4, 5, 6, 7, 8, 9]


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="NaN"):
        select_feedback([0.1, float("nan")], [0.1, 0.2])
    with pytest.raises(ValueError, match="eta"):
        select_feedback([0.1], [0.1], eta=80, delta=20)
    with pytest.raises(ValueError, match="semantic"):
        select_feedback([0.1, 0.2], [0.1])


def test_independent_uniform_scores_keep_about_036():
    rng = np.random.default_rng(0)
    n = 20000
    kept = select_feedback(rng.random(n), rng.random(n), eta=20, delta=80)
    # each band holds 60 %; independent rankings overlap in 0.6² = 0.36 of the items
    assert abs(len(kept) / n - 0.36) < 0.01
