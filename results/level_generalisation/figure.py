"""The level-diversity curve: how a reward learned from N distinct levels ranks episodes of unseen levels, per lever.

    python results/level_generalisation/figure.py OUT_DIR DEMO_DIR LEVER=SWEEP_DIR [LEVER=SWEEP_DIR ...]

Reads each lever's `trex/reward_model.py sweep` folders (a lever may be named more than once): every finished
reward model's metrics.json in sweep/L<levels>_n<demos>_s<seed>/, so a sweep still running is read as far as it
got; and the demo folders' summary.json; writes OUT_DIR/results.csv (one row per lever x levels x demos x level set),
OUT_DIR/table.md and OUT_DIR/level_generalisation.png. Intervals: over the reward-model seeds (Student t) for the
models' figures; for "centred - length" the paired 95% bootstrap interval over the demos of the seeds' mean centred
Spearman less the episode-length baseline's, on the same demos. "True reward, centred": the true returns centred
the same way (less the true reward's mean per frame on the folder's training demos times length), the most a
centred figure can reach on those demos. "Seeds' ensemble": the seeds' centred predicted returns averaged (as step 4
averages several reward models), its paired difference from length bootstrapped the same way.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from toolkit.config import load_yaml
from toolkit.figures import figure_row, save_figure
from toolkit.files import write_csv
from trex.demos.store import read_index
from trex.level_sets import LEGACY_DEMO_LEVEL_SETS, SCORED_SETS
from trex.results import read_metrics
from trex.reward.evaluation import block_offset, centred_returns, correlations, seed_interval, spearman_difference_ci
from trex.reward.table import figure_columns

SETS = SCORED_SETS
FIGURES = ("spearman", "centred_spearman", "partial_spearman", "snippet_accuracy", "within_level_spearman")


def load(lever_dirs: list[tuple[str, Path]]) -> dict[tuple, list[dict]]:
    """{(lever, demo levels, demos): [metrics.json of each seed]}; a lever may have several sweep folders."""
    groups: dict[tuple, list[dict]] = {}
    for lever, folder in lever_dirs:
        for path in sorted(folder.glob("sweep/L*_n*_s*/metrics.json")):
            levels, demos, _ = path.parent.name[1:].replace("_n", " ").replace("_s", " ").split()
            groups.setdefault((lever, int(levels), int(demos)), []).append(read_metrics(path))
    return groups


def true_offsets(demo_dir: Path, main_levels: int) -> dict[int, float]:
    """{demo levels: the true reward's mean per frame on that folder's training demos} (0: a fresh level per demo);
    the main folder's training demos come from `main_levels` levels."""
    levels_dirs = {int(p.name.removeprefix("levels_")): p for p in demo_dir.glob("levels_*")}
    folders = {main_levels: demo_dir, **levels_dirs}
    offsets = {}
    for levels, folder in folders.items():
        train = [r for r in read_index(folder, check_files=False) if r.level_set == "train"]
        offsets[levels] = sum(r.ret for r in train) / max(sum(r.length for r in train), 1)
    return offsets


def row(lever: str, levels: int, demos: int, key: str, metrics: list[dict], true_offset: float) -> dict:
    columns = [figure_columns(m) for m in metrics]
    out: dict = {"lever": lever, "demo_levels": levels or "fresh", "num_demos": demos, "level_set": key}
    for f in FIGURES:
        s = seed_interval([c[f"{key}_{f}"] for c in columns])
        out.update({f: s["mean"], f"{f}_low": s["ci95_low"], f"{f}_high": s["ci95_high"]})
    block = metrics[0][key]
    r = block["returns"]
    true, lengths = np.array(r["true"]), np.array(r["length"])
    centred = np.array(
        [centred_returns(m[key]["returns"]["predicted"], lengths, block_offset(m[key])) for m in metrics]
    )
    out.update(minus_length("centred_minus_length", true, centred, lengths))
    # The seeds' models as one ensemble (their centred predicted returns averaged, as step 4 averages the rewards of
    # several reward_model files), against the same length baseline on the same demos.
    ensemble = centred.mean(0)
    out["ensemble_centred"] = correlations(true, ensemble)["spearman"]
    out.update(minus_length("ensemble_minus_length", true, ensemble[None], lengths))
    length_ci = block["length_baseline"]["ci95"]["spearman"] or [None, None]
    out.update({"length_baseline": block["length_baseline"]["spearman"], "length_low": length_ci[0]})
    out["length_high"] = length_ci[1]
    # The same centring applied to the true reward (its training demos' mean per frame): the ceiling of "centred".
    out["true_centred"] = correlations(true, centred_returns(true, lengths, true_offset))["spearman"]
    out["time_baseline"] = seed_interval([c[f"{key}_time_baseline_spearman"] for c in columns])["mean"]
    out["offset_shift"] = seed_interval([c[f"{key}_offset_shift"] for c in columns])["mean"]
    out["demo_mean_return"] = float(np.mean(true))
    out["seeds"], out["demos"] = len(metrics), len(true)
    return out


def minus_length(name: str, true: np.ndarray, pred: np.ndarray, lengths: np.ndarray) -> dict:
    """{name, name_low, name_high}: the mean Spearman of `pred` ([S, n]) less the length baseline's on the same
    demos, with its paired 95% bootstrap interval."""
    diff = spearman_difference_ci(true, pred, lengths, np.random.default_rng(0))
    low, high = diff["ci95"] or [None, None]
    return {name: diff["difference"], f"{name}_low": low, f"{name}_high": high}


def fmt(x, spec: str = ".2f") -> str:
    return "-" if x is None or (isinstance(x, float) and not np.isfinite(x)) else format(x, spec)


def interval(r: dict, f: str) -> str:
    return f"{fmt(r[f])} [{fmt(r[f + '_low'])}, {fmt(r[f + '_high'])}]"


def table(rows: list[dict]) -> list[str]:
    lines = [
        "| lever | levels | demos | seeds | level set | Spearman | centred | centred - length [paired 95%] | partial | "
        "snippet acc. | within-level | length | time-only | true reward, centred | seeds' ensemble, centred | "
        "ensemble - length [paired 95%] | demo return |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['lever']} | {r['demo_levels']} | {r['num_demos']} | {r['seeds']} | {SETS[r['level_set']]} | "
            f"{interval(r, 'spearman')} | {interval(r, 'centred_spearman')} | "
            f"{interval(r, 'centred_minus_length')} | {interval(r, 'partial_spearman')} | "
            f"{interval(r, 'snippet_accuracy')} | {fmt(r['within_level_spearman'])} | {fmt(r['length_baseline'])} | "
            f"{fmt(r['time_baseline'])} | {fmt(r['true_centred'])} | {fmt(r['ensemble_centred'])} | "
            f"{interval(r, 'ensemble_minus_length')} | {fmt(r['demo_mean_return'])} |"
        )
    return lines


def plot(rows: list[dict], path: Path, env_name: str) -> None:
    game = {"starpilot": "StarPilot", "fruitbot": "FruitBot"}.get(env_name, env_name)
    counts = sorted({r["num_demos"] for r in rows})
    levers = list(dict.fromkeys(r["lever"] for r in rows))
    plt, fig, axes = figure_row(len(counts), width=6.0, height=4.5)
    for ax, n in zip(axes, counts, strict=True):
        for i, lever in enumerate(levers):
            for key, style in (("held_out", "-o"), ("new_episodes", ":s")):
                pts = [r for r in rows if r["lever"] == lever and r["num_demos"] == n and r["level_set"] == key]
                x = np.arange(len(pts))
                mean = np.array([np.nan if r["centred_spearman"] is None else r["centred_spearman"] for r in pts])
                low = np.array(
                    [np.nan if r["centred_spearman_low"] is None else r["centred_spearman_low"] for r in pts]
                )
                high = np.array(
                    [np.nan if r["centred_spearman_high"] is None else r["centred_spearman_high"] for r in pts]
                )
                ax.plot(x, mean, style, color=f"C{i}", label=f"{lever}, {SETS[key]}")
                if key == "held_out":
                    ax.fill_between(x, low, high, color=f"C{i}", alpha=0.15)
        held = [r for r in rows if r["lever"] == levers[0] and r["num_demos"] == n and r["level_set"] == "held_out"]
        ax.axhline(held[0]["length_baseline"], color="grey", ls="--", label="episode length, held-out levels")
        ax.set_xticks(np.arange(len(held)), [str(r["demo_levels"]) for r in held])
        ax.set_xlabel("distinct levels of the training demos")
        ax.set_ylabel("Spearman, centred predicted returns")
        ax.set_title(f"{game} (easy), {n} training demos, mean and 95% interval over seeds", fontsize=9)
        ax.set_ylim(-1, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    save_figure(plt, fig, path)


def main(argv: list[str]) -> None:
    out, demo_dir = Path(argv[0]), Path(argv[1])
    lever_dirs = [(a.split("=", 1)[0], Path(a.split("=", 1)[1])) for a in argv[2:]]
    groups = load(lever_dirs)
    levers = list(dict.fromkeys(lever for lever, _ in lever_dirs))
    order = lambda k: (levers.index(k[0]), k[2], k[1] == 0, k[1])
    demo_cfg = load_yaml(demo_dir / "config.yaml")
    offsets = true_offsets(demo_dir, demo_cfg["demo_num_levels"])
    rows = [row(*k, key, groups[k], offsets[k[1]]) for k in sorted(groups, key=order) for key in SETS]
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "results.csv", rows, tuple(rows[0]))
    demos = [
        f"| {p.parent.name if p.parent != demo_dir else 'main'} | {LEGACY_DEMO_LEVEL_SETS.get(s, s)}: "
        f"{v['count']} demos, mean return "
        f"{fmt(v['mean'])} (min {fmt(v['min'])}, max {fmt(v['max'])}) |"
        for p in sorted(demo_dir.glob("**/summary.json"))
        for s, v in json.loads(p.read_text())["level_sets"].items()
        if v["count"]
    ]
    text = ["| demo folder | level set: returns |", "|---|---|", *demos, "", *table(rows), ""]
    (out / "table.md").write_text("\n".join(text))
    plot(rows, out / "level_generalisation.png", demo_cfg["env_name"])
    print(f"{len(rows)} rows -> {out / 'results.csv'}, {out / 'table.md'}, {out / 'level_generalisation.png'}")


if __name__ == "__main__":
    main(sys.argv[1:])
