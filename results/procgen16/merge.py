"""Adds the games of a newly collected sweep (runs/procgen16, `--games GAME ... --collect true`) to
results/procgen16/benchmark: their rows replace any earlier rows of the same games in results.csv and held_out.csv,
and the figures over every game (held_out_by_game.png, correlation_by_levels.png) are drawn again from the merged
rows by the sweep report's own functions. The games run earlier keep their rows, whose runs may be gone.

    python results/procgen16/merge.py [runs/procgen16]
"""

from __future__ import annotations

import csv
from pathlib import Path

from toolkit.cli import UserError, run_main
from toolkit.files import write_csv
from trex.pipeline.sweep_report import nested_row, plot_by_levels, plot_games

HERE = Path(__file__).resolve().parent
BENCHMARK = HERE / "benchmark"


def number(text: str) -> int | float | str | None:
    """A CSV cell as the value the report wrote: an int, a float, None (empty) or the text."""
    if text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def read_rows(path: Path) -> tuple[list[dict], list[str]]:
    with path.open() as f:
        reader = csv.DictReader(f)
        return [{k: number(v) for k, v in r.items()} for r in reader], list(reader.fieldnames or [])


def merged(old: Path, new: Path) -> tuple[list[dict], list[str]]:
    """`old`'s rows of the games `new` lacks, in their order, then `new`'s; the columns are `old`'s."""
    (old_rows, columns), (new_rows, _) = read_rows(old), read_rows(new)
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
