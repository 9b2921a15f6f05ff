"""The demonstrators' table of results/procgen16: for each shipped folder (configs/sweep/procgen16.yaml's
`demonstrators`) and each PPO run of runs/p16, its budget, its last checkpoint's held-out return beside random
actions' on the same levels (strength.json, from ship.py), the Procgen paper's normalised score and published PPO,
whether it is shipped and at what size, and the wall time of its last piece.

    python results/procgen16/table.py          # runs/p16/ppo_* and the shipped folders -> demonstrators.md
"""

from __future__ import annotations

from pathlib import Path

from baseline_agent.checkpoint import list_checkpoints
from baseline_agent.scores import normalized_score
from toolkit.config import load_yaml
from toolkit.files import read_json, write_text
from toolkit.logger import fmt_interval

HERE = Path(__file__).resolve().parent
# The shipped demonstrators, game: folder, as the benchmark's config names them.
SHIPPED: dict[str, str] = load_yaml(HERE.parents[1] / "configs" / "sweep" / "procgen16.yaml")["demonstrators"]


def row(folder: Path) -> str:
    summary = read_json(folder / "summary.json")
    game = summary["env_name"]
    strength = read_json(folder / "strength.json") if (folder / "strength.json").is_file() else None
    size = sum(p.stat().st_size for p in list_checkpoints(Path(SHIPPED.get(game, "-")) / "checkpoints")) / 1e6
    ref = summary["reference_ppo_easy200_25m"]
    if strength:
        last, rand = strength["last"], strength["random"]
        played = f"{fmt_interval(last)} | {fmt_interval(rand)} | {normalized_score(game, 'easy', last['mean']):.2f}"
    else:
        played = "not measured | | "
    return (
        f"| {game} | {summary['total_timesteps']:,} | {played} | {ref['test']} | "
        f"{f'yes, {size:.2f} MB' if size else 'no'} | {summary['wall_time_s'] / 60:.0f} |"
    )


def main() -> None:
    runs: dict[str, Path] = {}
    shipped = [Path(folder) / "summary.json" for folder in SHIPPED.values()]
    for path in [*shipped, *sorted(Path("runs/p16").glob("ppo_*/summary.json"))]:  # a shipped folder first
        runs.setdefault(read_json(path)["env_name"], path.parent)
    lines = [
        "| game | steps | last checkpoint, held-out return [95% CI] | random actions | normalised (last) | "
        "published PPO, held-out | shipped | minutes, last piece |",
        "|---|---|---|---|---|---|---|---|",
        *[row(runs[game]) for game in sorted(runs)],
        "",
    ]
    write_text(HERE / "demonstrators.md", "\n".join(lines))
    print(f"wrote {HERE / 'demonstrators.md'}")


if __name__ == "__main__":
    main()
