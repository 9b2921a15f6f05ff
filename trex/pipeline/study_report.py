"""`report.md` of a study: what each step measured, as measured, with the figures beside it.

Every number comes from the run's JSON files (`reward_figures` aggregates the reward models' metrics.json over
seeds); the prose around the headline is chosen by those numbers, never written by hand.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import numpy as np

from baseline_agent.ppo_config import train_levels
from baseline_agent.scores import reference_table
from toolkit.files import write_text
from toolkit.logger import fmt, fmt_interval
from trex.config import TrexConfig, demo_levels, held_out
from trex.level_sets import EVALUATION_SETS, SCORED_SETS
from trex.pipeline.steps import Step
from trex.pipeline.study_layout import StepConfigs, StudyConfig, reward_dirs
from trex.policy.config import PolicyConfig
from trex.results import LevelSetFigures, RewardMetrics, StudyEvaluation, agent_results, correlation, scored_set
from trex.reward.evaluation import (
    block_offset,
    bootstrap_ci,
    centred_figures,
    centred_returns,
    correlations,
    figure_bounds,
    seed_interval,
    spearman_difference_ci,
)
from trex.reward.table import LABEL_FIGURES, PAIR_SET_NAMES, figure_columns, label_means

# Figures given as the seeds' mean and Student-t interval: {report name: figure_columns column, less the set}.
SEED_FIGURES = {  # in the order of the report's columns
    "partial_spearman": "partial_spearman",
    "snippet_accuracy": "snippet_accuracy",
    "offset_shift": "offset_shift",
    "within_level_spearman": "within_level_spearman",
    "within_checkpoint_spearman": "within_checkpoint_spearman",
}
FIGURES = ("spearman", "kendall", "pearson", "pair_accuracy")
AGENTS = {
    "trex_policy": "T-REX policy (learned reward only)",
    "survival_control": "control: PPO on survival alone (+1 per step)",
    "true_reward_ppo": "control: PPO on the true reward, same budget",
    "demonstrator": "final demonstrator (true reward)",
    "random": "uniform random actions",
}


def _load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _rel(path: Path, run: Path) -> str:
    return str(path.relative_to(run)) if path.is_relative_to(run) else str(path)


def _img(path: Path, run: Path, alt: str) -> str:
    return f"![{alt}]({_rel(path, run)})" if path.is_file() else f"*({alt}: not produced)*"


def reward_figures(metrics: list[RewardMetrics]) -> dict:
    """Each figure of each level set over the reward-model seeds: {set: {figure: {mean, ci95_low, ci95_high,
    seeds}}} (`level_set_figures`), with the seed-only figures of SEED_FIGURES."""
    out: dict = {}
    if not metrics:
        return out
    columns = [figure_columns(m) for m in metrics]  # once per model, not once per figure
    for key in SCORED_SETS:
        figures = level_set_figures([scored_set(m, key) for m in metrics])
        for name, column in SEED_FIGURES.items():
            seeds = seed_interval([c[f"{key}_{column}"] for c in columns], figure_bounds(column))
            figures[name] = {**seeds, "seeds": seeds}
        out[key] = figures
    return out


def level_set_figures(blocks: list[LevelSetFigures]) -> dict:
    """Each figure of one level set's blocks (one per reward-model seed, all scoring the same demos): {figure:
    {mean, ci95_low, ci95_high, seeds}}. The interval is the 95% bootstrap interval of the seeds' mean over the demos
    (resampled alike for every seed: levels, then episodes within them) and over the seeds themselves, so it holds
    both the seeds' spread and the demos' sampling; `seeds` is the seed-to-seed interval alone (on Fisher's z). The
    length baseline's figures are "length_<figure>"; "centred_spearman" is the Spearman correlation of the centred
    predicted returns (trex/reward/evaluation.py: centred_returns)."""
    block = blocks[0]
    true, lengths, clusters, centred = _centred_demos(blocks)
    preds = np.array([b["returns"]["predicted"] for b in blocks])
    boot = bootstrap_ci(true, preds, np.random.default_rng(0), clusters=clusters, resample_seeds=True)
    length = block["length_baseline"]
    figures = {}
    for f in FIGURES:
        figures[f] = _over_seeds([correlation(b, f) for b in blocks], boot.get(f), f)
        if f in boot:
            ci = length["ci95"][f] or (None, None)
            figures[f"length_{f}"] = {"mean": correlation(length, f), "ci95_low": ci[0], "ci95_high": ci[1]}
    figures["centred_spearman"] = _over_seeds(
        [centred_figures(b)["spearman"] for b in blocks],
        bootstrap_ci(true, centred, np.random.default_rng(1), clusters=clusters, resample_seeds=True)["spearman"],
    )
    figures["centred_minus_length"] = _minus_length(true, centred, lengths, clusters, resample_seeds=True)
    if all("time_baseline" in b["returns"] for b in blocks):
        times = np.array([b["returns"]["time_baseline"] for b in blocks])
        figures["time_spearman"] = _over_seeds(
            [b["time_baseline"]["spearman"] for b in blocks],
            bootstrap_ci(true, times, np.random.default_rng(2), clusters=clusters, resample_seeds=True)["spearman"],
        )
    return {
        **figures,
        "n_demos": block["n_demos"],
        "n_levels": block.get("n_levels"),
        "within_level_levels": block.get("within_level", {}).get("model", {}).get("levels"),
        "within_checkpoint_count": block.get("within_checkpoint", {}).get("model", {}).get("checkpoints"),
        "num_seeds": len(blocks),
    }


def ensemble_figures(blocks: list[LevelSetFigures]) -> dict:
    """The seeds' models of one level set as one reward, as step 4 averages the raw rewards of several reward_model
    files: the mean of their centred predicted returns. {"ensemble_centred": its Spearman with the true return,
    "ensemble_minus_length": the paired difference from the length baseline}, each {mean, ci95_low, ci95_high}
    with a 95% bootstrap over the demos (levels, then episodes within them)."""
    true, lengths, clusters, centred = _centred_demos(blocks)
    ensemble = centred.mean(0)
    ci = bootstrap_ci(true, ensemble, np.random.default_rng(1), clusters=clusters)["spearman"] or (None, None)
    return {
        "ensemble_centred": {"mean": correlations(true, ensemble)["spearman"], "ci95_low": ci[0], "ci95_high": ci[1]},
        "ensemble_minus_length": _minus_length(true, ensemble, lengths, clusters, resample_seeds=False),
    }


def _centred_demos(blocks: list[LevelSetFigures]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """The scored demos' true returns and lengths, their levels (None in files from before they were stored: demos
    then resampled alone) and each seed's centred predicted returns [S, n] (evaluation.py: centred_returns)."""
    r = blocks[0]["returns"]
    true, lengths = np.array(r["true"]), np.array(r["length"])
    clusters = None if r.get("level_seed") is None else np.array(r["level_seed"])
    centred = np.array([centred_returns(np.array(b["returns"]["predicted"]), lengths, block_offset(b)) for b in blocks])
    return true, lengths, clusters, centred


def _minus_length(
    true: np.ndarray, pred: np.ndarray, lengths: np.ndarray, clusters: np.ndarray | None, resample_seeds: bool
) -> dict[str, Any]:
    """The Spearman of `pred` ([n], or [S, n]: their mean) less length's, paired over resampled demos: {mean,
    ci95_low, ci95_high} (evaluation.py: spearman_difference_ci)."""
    diff = spearman_difference_ci(
        true, pred, lengths, np.random.default_rng(3), clusters=clusters, resample_seeds=resample_seeds
    )
    ci = diff["ci95"] if isinstance(diff["ci95"], list) else [None, None]
    return {"mean": diff["difference"], "ci95_low": ci[0], "ci95_high": ci[1]}


def _over_seeds(values: list[float | None], bootstrap: list[float] | None, figure: str = "spearman") -> dict[str, Any]:
    """A figure over the reward-model seeds: their mean and the bootstrap interval of that mean over the demos, or
    the seeds' own interval where the bootstrap's is undefined; `seeds`: the seeds' interval alone (within the
    `figure`'s bounds: trex/reward/evaluation.py figure_bounds)."""
    seeds = seed_interval(values, figure_bounds(figure))
    low, high = bootstrap if bootstrap is not None else (seeds["ci95_low"], seeds["ci95_high"])
    return {"mean": seeds["mean"], "ci95_low": low, "ci95_high": high, "seeds": seeds}


def _demo_count(figures: dict) -> str:
    levels = figures.get("n_levels")
    return f"{figures['n_demos']} demos" + ("" if levels is None else f" on {levels} levels")


def _reward_table(figures: dict) -> list[str]:
    rows = [
        "| level set | demos | Spearman | Kendall | Pearson | pair accuracy | length baseline Spearman | "
        "length baseline Kendall | length baseline Pearson | Spearman, centred |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, name in SCORED_SETS.items():
        f = figures[key]
        rows.append(
            f"| {name} | {f['n_demos']} | "
            + " | ".join(
                fmt_interval(f[x])
                for x in (*FIGURES, "length_spearman", "length_kendall", "length_pearson", "centred_spearman")
            )
            + " |"
        )
    return rows


def _beyond_time_table(figures: dict) -> list[str]:
    """What a reward must beat to have learned more than "time passes", per level set."""
    rows = [
        "| level set | time-only baseline Spearman | partial Spearman given length | snippet accuracy | "
        "offset shift from the training demos | within-level Spearman | within-checkpoint Spearman |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, name in SCORED_SETS.items():
        f = figures[key]
        none = {"mean": None, "ci95_low": None}
        names = ("time_spearman", *SEED_FIGURES)
        cells = [fmt_interval(f.get(x, none)) for x in names]
        if f.get("within_level_levels") is not None:
            cells[-2] += f" ({f['within_level_levels']} levels)"
        if f.get("within_checkpoint_count") is not None:
            cells[-1] += f" ({f['within_checkpoint_count']} checkpoints)"
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return rows


def labels_table(metrics: list[RewardMetrics]) -> list[str]:
    """What each pair set's labels can teach (trex/reward/pairs.py: label_figures), the mean over the seeds: ties
    and pairs the true reward orders against the label, the true reward's accuracy (the ceiling) and a clock's, beside
    the model's own. A clock above the true reward means the labels teach time."""
    means = label_means(metrics)
    if not means:
        return []
    return [
        "| pairs | number | ties | against the label | true reward's accuracy | clock's accuracy | model's accuracy |",
        "|---|---|---|---|---|---|---|",
        *[
            f"| {PAIR_SET_NAMES[key]} | {m['pairs']:,} | " + " | ".join(fmt(m[f]) for f in LABEL_FIGURES) + " |"
            for key, m in means.items()
        ],
    ]


def _seed_table(metrics: list[RewardMetrics]) -> list[str]:
    rows = [
        "| seed | Spearman, training levels [bootstrap 95%] | Spearman, held-out levels [bootstrap 95%] | "
        "best validation accuracy | training demos |",
        "|---|---|---|---|---|",
    ]
    for m in metrics:
        parts = []
        for key in SCORED_SETS:
            ci = scored_set(m, key)["ci95"]["spearman"]
            parts.append(fmt(scored_set(m, key)["spearman"]) + ("" if ci is None else f" [{fmt(ci[0])}, {fmt(ci[1])}]"))
        rows.append(
            f"| {m['seed']} | {parts[0]} | {parts[1]} | {fmt(m['best_val_accuracy'])} | {m['num_train_demos']} |"
        )
    return rows


def _returns_table(results: StudyEvaluation) -> list[str]:
    rows = [
        "| policy | level set | mean return | 95% CI | normalised score | mean length | 95% CI | episodes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, label in AGENTS.items():
        block = agent_results(results, key)
        if block is None:
            continue
        for level_set in EVALUATION_SETS:
            s = block[level_set]
            ci = f"[{fmt(s.get('ci95_low'))}, {fmt(s.get('ci95_high'))}]"
            length = s.get("length", {})
            length_ci = f"[{fmt(length.get('ci95_low'), '.0f')}, {fmt(length.get('ci95_high'), '.0f')}]"
            rows.append(
                f"| {label} | {EVALUATION_SETS[level_set]} | {fmt(s['mean'])} | {ci} | "
                f"{fmt(s.get('normalized_score'))} | {fmt(s.get('mean_length'), '.0f')} | {length_ci} | {s['n']} |"
            )
    return rows


def _policy_line(cfg: StudyConfig, policy: PolicyConfig, results: StudyEvaluation, metrics: list[RewardMetrics]) -> str:
    """The headline's policy sentence: what it learned from, and its return beside the baselines."""
    models = (
        f"seed {cfg.seed}'s model"
        if len(policy.reward_model) == 1
        else f"the mean of {len(policy.reward_model)} models"
    )
    test = lambda k: fmt(block["held_out"]["mean"]) if (block := agent_results(results, k)) else "not run"
    first = metrics[0]["held_out"]
    return (
        f"Policy trained on the learned reward alone ({models}, transform {policy.reward_transform}, survival "
        f"bonus {policy.survival_bonus:g}; seed {cfg.seed}'s model: held-out Spearman {fmt(first['spearman'])}, "
        f"mean reward per frame on its training demos {fmt(first.get('offset', {}).get('train'), '.3g')}), true "
        f"return on held-out levels: {test('trex_policy')} (survival control {test('survival_control')}, "
        f"true-reward PPO at the same budget {test('true_reward_ppo')}, random policy {test('random')}, "
        f"demonstrator {test('demonstrator')})."
    )


def _demo_ranges(demo_summary: dict) -> list[str]:
    rows = ["| level set | levels drawn from | demos | min return | mean | max |", "|---|---|---|---|---|---|"]
    for name, s in demo_summary.get("level_sets", {}).items():
        if s and s.get("count"):
            ranges = ", ".join(demo_summary.get("level_ranges", {}).get(name, []))
            rows.append(f"| {name} | {ranges} | {s['count']} | {fmt(s['min'])} | {fmt(s['mean'])} | {fmt(s['max'])} |")
    return rows


def _side(x: dict) -> str:
    """Where a figure's 95% interval lies: "above" or "below" zero, or "around" it (or no interval)."""
    if x["ci95_low"] is None or x["ci95_high"] is None:
        return "around"
    return "above" if x["ci95_low"] > 0 else "below" if x["ci95_high"] < 0 else "around"


def reading(figures: dict) -> str:
    """What the gap between the two level sets means, chosen by the numbers and their signs."""
    train, test = figures["new_episodes"]["spearman"], figures["held_out"]["spearman"]
    if train["mean"] is None or test["mean"] is None:
        return "Too few demos to read the gap."
    if _side(train) == "below":
        text = (
            f"The learned reward ranks new episodes of the levels it was trained on backwards (Spearman "
            f"{fmt(train['mean'])}, interval below 0): it has learned the opposite of the ranking, so there is no "
            "generalisation to measure."
        )
    elif _side(train) == "around":
        text = (
            "The learned reward does not reliably rank even new episodes of the levels it was trained on: it has "
            "not learned the ranking, so there is no generalisation to measure."
        )
    elif _side(test) == "below":
        text = (
            f"The learned reward ranks new episodes of the levels it was trained on (Spearman {fmt(train['mean'])}), "
            f"but episodes of unseen levels backwards (Spearman {fmt(test['mean'])}, interval below 0): what it "
            "learned on its levels is reversed on others; it does not generalise across levels."
        )
    elif _side(test) == "around":
        text = (
            f"The learned reward ranks new episodes of the levels it was trained on (Spearman "
            f"{fmt(train['mean'])}), but not episodes of unseen levels (Spearman {fmt(test['mean'])}, interval "
            "includes 0): what it learned is tied to those levels and does not generalise across levels."
        )
    elif test["ci95_high"] < train["ci95_low"]:
        text = (
            f"The learned reward ranks episodes of unseen levels too, but worse (Spearman {fmt(test['mean'])} vs "
            f"{fmt(train['mean'])}, the intervals apart): it generalises in part."
        )
    else:
        text = (
            f"The learned reward ranks episodes of unseen levels about as well as new episodes of its training "
            f"levels (Spearman {fmt(test['mean'])} vs {fmt(train['mean'])}): it generalises across levels."
        )
    length = figures["held_out"]["length_spearman"]
    if length["mean"] is not None and length["mean"] >= test["mean"]:
        text += (
            f" On held-out levels the episode-length baseline does at least as well (Spearman "
            f"{fmt(length['mean'])}), so episode length alone explains as much of the ranking there."
        )
    diff = figures["held_out"].get("centred_minus_length")
    if diff is not None and diff["ci95_low"] is not None:
        verdict = (
            "beats episode length there"
            if diff["ci95_low"] > 0
            else "falls short of episode length there"
            if diff["ci95_high"] < 0
            else "cannot be told apart from episode length there"
        )
        text += (
            f" Centred (free of the per-frame constant), the reward {verdict}: held-out Spearman less the length "
            f"baseline's {fmt_interval(diff)} (paired 95% bootstrap interval over the levels, episodes and seeds)."
        )
    return text


def _lever_section(reward: dict) -> list[str]:
    """The second set of reward models (the study's `lever`) beside the first, on the headline figures."""
    if "lever" not in reward:
        return []
    keys = ", ".join(f"{k}: {v}" for k, v in reward["lever"]["keys"].items())
    rows = [
        f"The same reward models with **{keys}** (the study's lever), same demos and seeds:",
        "",
        "| reward models | level set | Spearman | Spearman, centred | partial Spearman | snippet accuracy | "
        "length baseline |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, figures in (("without", reward["figures"]), (f"with {keys}", reward["lever"]["figures"])):
        for key, name in SCORED_SETS.items():
            f = figures[key]
            names = ("spearman", "centred_spearman", "partial_spearman", "snippet_accuracy", "length_spearman")
            rows.append(f"| {label} | {name} | " + " | ".join(fmt_interval(f[x]) for x in names) + " |")
    return [*rows, ""]


def _beyond_time_section(trex: TrexConfig, figures: dict, metrics: list[RewardMetrics]) -> list[str]:
    """What a reward must beat to have learned more than time, and what its labels can teach."""
    return [
        "Beyond the passing of time: the time-only baseline gives every frame the training demos' mean learned "
        "reward at its time step (what a reward that knows only *when* a frame comes would score); the partial "
        "Spearman correlates the centred predicted return and the true return with episode length partialled out; "
        "snippet accuracy ranks "
        f"{trex.eval_pairs:,} equal-length snippet pairs of each set (a constant per-frame reward cannot move it); "
        "within-level Spearman ranks episodes of one and the same level (mean over levels with 3 or more demos), "
        "within-checkpoint Spearman the demos of one demonstrator checkpoint (a reward that knows a checkpoint's "
        "style of play, not the game, ranks demos across checkpoints but not among one's own); the "
        "offset shift is the mean reward per frame on the set less that on the training demos. Means over seeds, "
        "seed intervals (Student t, on Fisher's z for correlations; the time baseline's interval is the bootstrap "
        "over levels, episodes and seeds):",
        "",
        *_beyond_time_table(figures),
        "",
        "What the labels can teach: each set of snippet pairs the model was trained, validated or scored on, with "
        "the share of ties (equal true return in both windows) and of pairs the true reward orders against the "
        "label, the accuracy of the true reward itself on those pairs (ordered as labelled plus half the ties: the "
        "ceiling of any reward) and of a clock (a reward that only grows with time), beside the model's (training "
        "pairs: after training, without augmentation; validation pairs: the best checkpoint's). Where the clock "
        "scores as high as the true reward, the labels teach time as well as the game:",
        "",
        *labels_table(metrics),
        "",
    ]


def write_report(
    cfg: StudyConfig,
    configs: StepConfigs,
    steps: list[Step],
    results: StudyEvaluation,
    reward: dict,
    timings: dict,
) -> Path:
    """`results`: evaluation.json; `reward`: reward.json (`reward_figures` of the seeds' metrics, and the metrics)."""
    run = Path(cfg.run_dir)
    ppo, trex, policy = configs.ppo, configs.trex, configs.policy
    ppo_dir, policy_dir, first = Path(ppo.run_dir), Path(policy.run_dir), reward_dirs(cfg)[0]
    metrics, figures = reward["metrics"], reward["figures"]
    demos = _load(Path(trex.demo_dir) / "summary.json")
    ref = reference_table().get(cfg.env_name, {})
    train_fig, test_fig = figures["new_episodes"], figures["held_out"]
    demonstrators = "every level" if cfg.num_levels == 0 else f"levels {train_levels(ppo)}"
    policy_levels = "every level" if policy.num_levels == 0 else f"levels {train_levels(policy)}"
    sweep_dir = run / "reward" / "sweep"
    lines = [
        f"# T-REX on Procgen {cfg.env_name} ({cfg.distribution_mode}): study report",
        "",
        f"Run folder `{run}`, seed {cfg.seed}. Demonstrators trained on {demonstrators}, the policy on "
        f"{policy_levels}; training demos "
        f"drawn from levels {demo_levels(trex)}; held-out levels {held_out(trex)} (disjoint, checked). Every figure "
        "below was measured by this run; nothing is filled in by hand.",
        "",
        "## Headline",
        "",
        f"Reward model, Spearman correlation of predicted and true returns of demonstrations it never trained on "
        f"(mean of {len(metrics)} reward-model seeds; 95% bootstrap interval over the levels, the episodes within "
        "them and the seeds):",
        "",
        f"- new episodes of the training demos' levels: **{fmt_interval(train_fig['spearman'])}** "
        f"(episode-length baseline {fmt_interval(train_fig['length_spearman'])}; centred "
        f"{fmt_interval(train_fig['centred_spearman'])}; {_demo_count(train_fig)})",
        f"- held-out levels: **{fmt_interval(test_fig['spearman'])}** "
        f"(episode-length baseline {fmt_interval(test_fig['length_spearman'])}; centred "
        f"{fmt_interval(test_fig['centred_spearman'])}; {_demo_count(test_fig)})",
        "",
        "Centred: the predicted returns less the model's mean reward per frame on its own training demos times the "
        "episode's length. T-REX "
        "compares snippets of equal length, so its loss cannot see a constant added to every frame's reward; summed "
        "over whole episodes, that constant's sign alone can carry the plain figure towards the length baseline or "
        "away from it. The centred figure is what the reward learned beyond the passing of time.",
        "",
        reading(figures),
        "",
        _policy_line(cfg, policy, results, metrics),
        "",
        "## 1. Demonstrators (PPO on the true reward)",
        "",
        f"{ppo.total_timesteps:,} environment steps, {ppo.num_envs} envs x {ppo.num_steps} steps per update, IMPALA "
        f"CNN channels {ppo.channels}, {ppo.hidden_size} units. Published PPO at 25M steps (Cobbe et al. 2020, "
        f"easy, 200 levels): {fmt(ref.get('ppo_easy200_train_25m'))} on training levels, "
        f"{fmt(ref.get('ppo_easy200_test_25m'))} on unseen levels.",
        "",
        _img(ppo_dir / "learning_curve.png", run, "demonstrator learning curve"),
        "",
        "## 2. Demonstrations, returns by level set",
        "",
        *_demo_ranges(demos),
        "",
        "## 3. The learned reward",
        "",
        f"Mean of {len(metrics)} seeds and 95% bootstrap interval of that mean over the levels, the episodes within "
        f"them and the seeds ({trex.reward_net} net, {trex.num_pairs:,} pairs, {trex.num_demos} training demos "
        f"chosen {trex.demo_selection.replace('_', ' ')}); seed-to-seed Spearman intervals (Student t on Fisher's "
        "z): training levels "
        f"{fmt_interval(train_fig['spearman']['seeds'])}, held-out levels "
        f"{fmt_interval(test_fig['spearman']['seeds'])}.",
        "",
        *_reward_table(figures),
        "",
        *_beyond_time_section(trex, figures, metrics),
        *_lever_section(reward),
        "How this figure changes with the number of levels the training demos come from, with and without the "
        "lever, is what `results/level_generalisation/` measures (StarPilot, 8 to 512 levels and a fresh level "
        "per demo, several seeds): a single study shows one point of that curve.",
        "",
        "Each seed, with its own 95% bootstrap interval over the levels and the episodes within them:",
        "",
        *_seed_table(metrics),
        "",
        f"Plots of seed {cfg.seed}'s model:",
        "",
        _img(first / "predicted_vs_true.png", run, "predicted vs true return"),
        _img(first / "cumulative_reward.png", run, "cumulative predicted vs true reward"),
        _img(first / "reward_by_time.png", run, "mean predicted reward by time step"),
        "",
        "What the reward responds to: its reward per frame on the best and worst demo of each level set (lines where "
        "the true reward paid), and where it looks (the mean absolute gradient of the reward with respect to each "
        "pixel, over the set's frames). A reward that learned the game looks at the same things on both level sets; "
        "one that learned time or a level's layout looks at the background:",
        "",
        _img(first / "what_the_reward_sees.png", run, "what the reward responds to"),
        "",
        *(
            [_img(sweep_dir / "sweep.png", run, "correlation by number of demos and of levels"), ""]
            if cfg.sweep
            else []
        ),
        "## 4. Policy on the learned reward, evaluated on the true reward",
        "",
        *_returns_table(results),
        "",
        _img(policy_dir / "learning_curve.png", run, "policy learning curve, learned and true return"),
        "",
        f"Video: [{_rel(run / 'policy.mp4', run)}]({_rel(run / 'policy.mp4', run)})"
        if (run / "policy.mp4").is_file()
        else "Video: not produced.",
        "",
        "## Commands",
        "",
        "This run, step by step (each skips what exists and resumes what was cut off):",
        "",
        "```",
        *[shlex.join(s.command) for s in steps],
        "```",
        "",
        "## Wall time of each step (this machine)",
        "",
        "| step | seconds |",
        "|---|---|",
        *[f"| {name} | {sec:.0f} |" for name, sec in timings.items()],
        "",
    ]
    path = run / "report.md"
    write_text(path, "\n".join(lines))
    return path
