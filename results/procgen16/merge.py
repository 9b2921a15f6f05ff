"""Adds the games of a newly collected sweep (runs/procgen16, `--games GAME ... --collect true`) to
results/procgen16/benchmark: their rows replace any earlier rows of the same games in results.csv and held_out.csv,
and the figures over every game (held_out_by_game.png, correlation_by_levels.png) are drawn again from the merged
rows by the sweep report's own functions. The games run earlier keep their rows, whose runs may be gone.

    python results/procgen16/merge.py [runs/procgen16]
"""

from __future__ import annotations

from pathlib import Path

from toolkit.cli import UserError, run_main
from toolkit.files import read_csv, write_csv
from trex.pipeline.sweep_report import nested_row, plot_by_levels, plot_games

HERE = Path(__file__).resolve().parent
BENCHMARK = HERE / "benchmark"


def merged(old: Path, new: Path) -> tuple[list[dict], list[str]]:
    """`old`'s rows of the games `new` lacks, in their order, then `new`'s; the columns are `old`'s."""
    (old_rows, columns), (new_rows, _) = read_csv(old), read_csv(new)
    games = {r["game"] for r in new_rows}
    rows = [r for r in old_rows if r["game"] not in games] + new_rows
    return rows, columns


def main(argv: list[str]) -> None:
    run = Path(argv[0] if argv else "runs/procgen16")
    for name in ("sweep_results.csv", "sweep_held_out.csv"):
        if not (run / name).is_file():
            raise UserError(
                f"{run / name} does not exist: collect the sweep first (python -m trex.sweep -c "
                "configs/sweep/procgen16.yaml --games GAME --collect true)"
            )
    results, result_columns = merged(BENCHMARK / "results.csv", run / "sweep_results.csv")
    held, held_columns = merged(BENCHMARK / "held_out.csv", run / "sweep_held_out.csv")
    write_csv(BENCHMARK / "results.csv", results, tuple(result_columns))
    write_csv(BENCHMARK / "held_out.csv", held, tuple(held_columns))
    plot_games([nested_row(r) for r in held], BENCHMARK / "held_out_by_game.png")
    plot_by_levels(results, BENCHMARK / "correlation_by_levels.png")
    games = sorted({str(r["game"]) for r in held})
    print(f"{BENCHMARK}: {len(results)} reward models, {len(held)} held-out rows of {len(games)} games: {games}")


if __name__ == "__main__":
    run_main(main)
