"""EmoSym's losses: rationale InfoNCE (step 1) and the verifiable-reward objective (step 2).

Step 1, reasoning-knowledge compression:

    L_1 = w_ce · CE(head(h_EMO), y) + w_nce · InfoNCE(proj(h_CTX), t_rationale)       (w_ce = w_nce = 0.5)

``rationale_info_nce`` is the InfoNCE term. Its negatives are the *other rationales* of the batch. Where two
rows share one sentence (in EmoShapes every (scene, object) cell has one rationale; attribute templates repeat
on EmoSet too), that sentence is one candidate, not a false negative of its twin: the logits are taken
against the batch's distinct rationales and each row's target is its own sentence. With all sentences
distinct this is the usual in-batch InfoNCE (τ = 0.07).

Step 2, verifiable reinforcement, against a frozen copy of the step-1 model (``reference``):

    r_i  = 0.3 · 1[argmax p_i = y_i] + 0.7 · p_i(y_i)             verifiable reward (no gradient: a signal)
    R    = mean_i r_i · p_i(y_i)                                    reward-weighted likelihood
    KL   = mean_i KL(p_i ‖ p_ref,i)                                 the anchor to the step-1 head
    β    = 0.05 if KL > 0.5, 0.2 if KL < 0.1, else 0.1             adaptive, from the batch's KL value
    L_2  = CE(logits, y) − (R − β · KL)

The reward is held constant (detached) in the objective: it scores the sample, and the gradient flows through
p(y) only, as a policy-gradient signal would. β is chosen from the detached KL. Nothing here is adapted from
another repository.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

REWARD_CORRECT = 0.3  # weight of 1[argmax p = y] in the verifiable reward
REWARD_PROB = 0.7  # weight of p(y)
BETA_HIGH_KL, BETA_LOW_KL, BETA_MID = 0.05, 0.2, 0.1  # adaptive β: KL > 0.5, KL < 0.1, otherwise
KL_HIGH, KL_LOW = 0.5, 0.1


def distinct_targets(rationales: Sequence[str]) -> tuple[list[int], Tensor]:
    """The first row of each distinct sentence, and each row's index among the distinct ones (in order of first
    appearance). ``["a", "b", "a"]`` -> ``([0, 1], tensor([0, 1, 0]))``."""
    first, index = {}, []
    for i, sentence in enumerate(rationales):
        index.append(first.setdefault(sentence, len(first)))
    rows = [rationales.index(s) for s in first]
    return rows, torch.tensor(index, dtype=torch.long)


def rationale_info_nce(ctx_embeds: Tensor, text_embeds: Tensor, rationales: Sequence[str],
                       temperature: float = 0.07) -> Tensor:
    """InfoNCE from each row's ``[CTX]`` projection to its rationale's text embedding, the batch's other
    distinct rationales as negatives.

    Args:
        ctx_embeds: (B, E) projections of the ``[CTX]`` hidden states (normalised here).
        text_embeds: (B, E) text embeddings of each row's rationale (normalised here); rows with the same
            sentence must carry the same embedding (only the first is read).
        rationales: B sentences; equal strings are one candidate.
        temperature: τ (EmoSym: 0.07).
    Returns: the mean over rows of −log softmax(cos(c_i, t_k) / τ)[k = own sentence].
    """
    if ctx_embeds.shape != text_embeds.shape or ctx_embeds.dim() != 2:
        raise ValueError(f"ctx_embeds and text_embeds must both be (B, E); got {tuple(ctx_embeds.shape)} and "
                         f"{tuple(text_embeds.shape)}")
    if len(rationales) != ctx_embeds.shape[0]:
        raise ValueError(f"{len(rationales)} rationales for a batch of {ctx_embeds.shape[0]}")
    rows, targets = distinct_targets(list(rationales))
    candidates = F.normalize(text_embeds[rows], dim=-1)
    logits = F.normalize(ctx_embeds, dim=-1) @ candidates.T / temperature
    return F.cross_entropy(logits, targets.to(logits.device))


def adaptive_beta(kl: float) -> float:
    """β of the KL anchor from the batch's KL: 0.05 above 0.5 (let the anchor go less), 0.2 below 0.1, else 0.1."""
    if kl > KL_HIGH:
        return BETA_HIGH_KL
    if kl < KL_LOW:
        return BETA_LOW_KL
    return BETA_MID


def verifiable_reward(probs: Tensor, labels: Tensor) -> Tensor:
    """(B,) rewards 0.3 · 1[argmax p = y] + 0.7 · p(y) of (B, C) probabilities against (B,) labels."""
    p_y = probs.gather(1, labels[:, None]).squeeze(1)
    correct = (probs.argmax(dim=1) == labels).to(probs.dtype)
    return REWARD_CORRECT * correct + REWARD_PROB * p_y


@dataclass
class RewardTerms:
    loss: Tensor  # CE − (R − β·KL), the value to minimise
    ce: Tensor
    reward_objective: Tensor  # R = mean(r · p(y))
    kl: Tensor  # mean KL(p ‖ p_ref)
    beta: float
    mean_reward: float  # mean r, for the logs


def reward_loss(logits: Tensor, reference_logits: Tensor, labels: Tensor) -> RewardTerms:
    """Step 2's objective for (B, C) logits of the trained model and of the frozen reference (see the module)."""
    if logits.shape != reference_logits.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and reference logits {tuple(reference_logits.shape)} "
                         "must have the same shape")
    log_p = F.log_softmax(logits.float(), dim=1)
    p = log_p.exp()
    log_p_ref = F.log_softmax(reference_logits.detach().float(), dim=1)
    p_y = p.gather(1, labels[:, None]).squeeze(1)
    reward = verifiable_reward(p.detach(), labels)
    objective = (reward * p_y).mean()
    kl = F.kl_div(log_p_ref, log_p, reduction="batchmean", log_target=True)  # Σ p (log p − log p_ref) / B
    beta = adaptive_beta(float(kl.detach()))
    ce = F.nll_loss(log_p, labels)
    return RewardTerms(loss=ce - (objective - beta * kl), ce=ce, reward_objective=objective, kl=kl, beta=beta,
                       mean_reward=float(reward.mean()))
