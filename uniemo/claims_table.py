"""The claims table and its figure, from the per-seed accuracies ``uniemo.training.claims.run_claims`` measures.

Each claim compares a treatment arm with a control arm of the same budget, seed by seed: the table gives both
arms' mean ± standard deviation over the seeds (sample standard deviation, n - 1; none for one seed), the mean
± standard deviation of the per-seed difference (treatment - control, in accuracy points) and the number of
seeds on which the treatment won. Written as markdown (``write_table``) and a bar figure (``plot_claims``),
drawn on a bare ``matplotlib.figure.Figure``.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.figure import Figure

from uniemo.readme_block import replace_block

# (key, what it claims, treatment arm, control arm)
CLAIMS: tuple[tuple[str, str, str, str], ...] = (
    ("queries", "expert queries help understanding", "stage1", "stage1_no_queries"),
    ("implicit", "joint stage 2 improves understanding (vs stage 1 alone)", "joint", "stage1"),
    ("implicit_same_budget", "joint stage 2 vs the same stage-2 steps with L_U only", "joint", "joint_lu_only"),
    ("explicit", "one feedback round vs the same continuation without generated images", "with_feedback",
     "without_feedback"),
)
PANEL_TITLES = {"queries": "(a) expert queries", "implicit": "(b) stage 2 vs stage 1 alone",
                "implicit_same_budget": "(b) stage 2 vs L_U-only stage 2", "explicit": "(c) explicit feedback"}
README_START, README_END = "<!-- claims:start -->", "<!-- claims:end -->"
ARM_NAMES = {"stage1": "stage 1", "stage1_no_queries": "stage 1, no queries", "joint": "stage 1 + stage 2",
             "joint_lu_only": "stage 1 + stage 2 (L_U only)", "with_feedback": "+ feedback round",
             "without_feedback": "+ continuation, real only"}


def stats(values: Sequence[float]) -> dict:
    """``mean``, ``std`` (sample, n - 1; ``None`` for one value), ``n`` and the values themselves."""
    values = [float(v) for v in values]
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else None,
            "n": len(values), "values": values}


def summarise(results: Mapping[str, Mapping[str, Mapping]]) -> dict:
    """``{regime: {"seeds", "arms": {arm: stats}, "claims": {claim: {...}}}}`` from
    ``{regime: {seed: {"top1": {arm: accuracy}}}}``; accuracies and differences in points (x 100)."""
    out = {}
    for regime, seeds in results.items():
        names = list(seeds)
        arms = {arm: stats([100 * seeds[s]["top1"][arm] for s in names])
                for arm in ARM_NAMES if all(arm in seeds[s]["top1"] for s in names)}
        claims = {}
        for key, text, treatment, control in CLAIMS:
            if treatment not in arms or control not in arms:
                continue
            diffs = [a - b for a, b in zip(arms[treatment]["values"], arms[control]["values"])]
            claims[key] = {"claim": text, "treatment": treatment, "control": control, "difference": stats(diffs),
                           "treatment_wins": sum(d > 0 for d in diffs), "ties": sum(d == 0 for d in diffs)}
        changes = [seeds[s]["weight_change"] for s in names if "weight_change" in seeds[s]]
        weight_change = {k: stats([c[k] for c in changes]) for k in (changes[0] if changes else {})}
        out[regime] = {"seeds": names, "arms": arms, "claims": claims, "weight_change": weight_change}
    return out


def _pm(s: Mapping, signed: bool = False) -> str:
    mean = f"{s['mean']:+.2f}" if signed else f"{s['mean']:.2f}"
    return mean if s["std"] is None else f"{mean} ± {s['std']:.2f}"


def table_markdown(summary: Mapping) -> str:
    """The claims as one markdown table: a row per regime and claim."""
    lines = ["| claim | regime | treatment | control | treatment top-1 (%) | control top-1 (%) | difference (points) "
             "| seeds won |", "|---|---|---|---|---|---|---|---|"]
    for key, text, treatment, control in CLAIMS:
        for regime, part in summary.items():
            c = part["claims"].get(key)
            if c is None:
                continue
            lines.append(f"| {text} | {regime} | {ARM_NAMES[treatment]} | {ARM_NAMES[control]} "
                         f"| {_pm(part['arms'][treatment])} | {_pm(part['arms'][control])} "
                         f"| {_pm(c['difference'], signed=True)} | {c['treatment_wins']} of {c['difference']['n']} |")
    return "\n".join(lines) + "\n"


def write_table(summary: Mapping, cfg, path: str | Path) -> Path:
    """``claims.md``: the table, the seeds and the regimes' budgets (``cfg``: a ``ClaimsConfig``)."""
    regimes = {"low": f"{cfg.low_per_class} labelled training images per emotion (drawn by each seed), stage 1 "
                      f"{cfg.low_stage1_epochs} epochs at batch {cfg.low_stage1_batch_size}",
               "default": f"the whole training split, stage 1 {cfg.default_stage1_epochs} epochs at batch "
                          f"{cfg.default_stage1_batch_size}"}
    text = ["# The paper's claims on EmoShapes", "",
            "Top-1 accuracy on the EmoShapes test split, mean ± standard deviation over seeds "
            f"{', '.join(map(str, cfg.seeds))} (seeds not used to build or tune UniEmo-Tiny). Written by "
            "`python -m train.claims`.", "",
            table_markdown(summary), "Regimes:", ""]
    text += [f"- **{r}**: {regimes[r]}; seeds done: {', '.join(summary[r]['seeds'])}" for r in summary]
    rows = [(regime, name, s) for regime, part in summary.items() for name, s in part.get("weight_change", {}).items()]
    if rows:
        text += ["", "How far each step moved the classifier: the largest change of any of its weights (mean over "
                 "seeds; stage 2 trains the queries, Interactive Blocks and projections):", "",
                 "| regime | between | largest weight change |", "|---|---|---|"]
        text += [f"| {regime} | {name} | {s['mean']:.2e} |" for regime, name, s in rows]
    text += ["", f"Stage 2: {cfg.joint_steps} steps at batch {cfg.joint_batch_size} after stage 1; the feedback "
             f"round generates {cfg.feedback_per_emotion} candidates per emotion, keeps those in the 20-80 % band "
             f"of both scores, and the two continuations run {cfg.continuation_steps} steps (kept images "
             f"{100 * cfg.feedback_proportion:.0f} % of the training set in one of them).", ""]
    Path(path).write_text("\n".join(text))
    return Path(path)


def plot_claims(summary: Mapping, path: str | Path) -> Path:
    """A panel per claim: each arm's mean top-1 per regime (bar, ± standard deviation) and every seed (dots)."""
    keys = [k for k, *_ in CLAIMS if any(k in part["claims"] for part in summary.values())]
    fig = Figure(figsize=(3.4 * max(1, len(keys)), 3.4), layout="constrained")
    axes = fig.subplots(1, max(1, len(keys)), squeeze=False)[0]
    colours = ("tab:blue", "tab:grey")
    for ax, key in zip(axes, keys):
        _, _, treatment, control = next(c for c in CLAIMS if c[0] == key)
        regimes = [r for r, part in summary.items() if key in part["claims"]]
        for j, arm in enumerate((treatment, control)):
            for i, regime in enumerate(regimes):
                s = summary[regime]["arms"][arm]
                x = i + (j - 0.5) * 0.38
                ax.bar(x, s["mean"], width=0.36, color=colours[j], yerr=s["std"] or 0.0, capsize=3,
                       label=ARM_NAMES[arm] if i == 0 else None)
                ax.scatter([x] * s["n"], s["values"], color="black", s=8, zorder=3)
        lows = [min(summary[r]["arms"][a]["values"]) for r in regimes for a in (treatment, control)]
        ax.set_ylim(max(0.0, min(lows) - 8.0), 100.0)
        ax.set_xticks(range(len(regimes)), regimes)
        ax.set_ylabel("test top-1 (%)")
        ax.set_title(PANEL_TITLES[key], fontsize=9)
        ax.legend(fontsize=7, loc="lower left")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return Path(path)


def update_readme(path: str | Path, summary: Mapping) -> None:
    """Rewrite the table between ``README_START`` and ``README_END`` in ``path`` (both markers must be there)."""
    replace_block(path, README_START, README_END, table_markdown(summary))
