"""results/policy_on_learned_reward/evaluate.py: a new condition's runs join the committed table, conditions
whose runs are gone keep their rows (runs/ does not survive between machines), and each condition is compared with
the raw learned reward paired by PPO seed (checked by hand)."""

import importlib.util
import json
from pathlib import Path

from toolkit.files import read_csv

ROOT = Path(__file__).resolve().parents[1]


def load_evaluate():
    spec = importlib.util.spec_from_file_location(
        "evaluate", ROOT / "results" / "policy_on_learned_reward" / "evaluate.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cached_run(runs: Path, name: str, returns: list[float], finished: bool = True) -> None:
    """A run folder whose evaluation is already on disk, so nothing is played."""
    folder = runs / name
    folder.mkdir(parents=True)
    if finished:
        (folder / "summary.json").write_text("{}")
    block = {"returns": returns, "lengths": [100.0] * len(returns)}
    (folder / "evaluation.json").write_text(
        json.dumps({"training levels (0-31)": block, "held-out levels (1,000,000+)": block})
    )


def test_a_new_condition_joins_the_table_and_conditions_without_runs_keep_their_rows(tmp_path):
    evaluate = load_evaluate()
    out, runs = tmp_path / "out", tmp_path / "runs"
    out.mkdir()
    for seed in range(3):
        cached_run(runs, f"random_s{seed}", [1.0, 2.0])
        cached_run(runs, f"none_s{seed}", [3.0, 3.0 + seed])
    cached_run(runs, "strong400_s9", [9.0], finished=False)  # unfinished: not evaluated
    evaluate.main(runs, out)
    first, columns = read_csv(out / "results.csv")
    assert (out / "curves.png").is_file()  # every condition's runs were there

    (out / "curves.png").unlink()
    for seed in range(3):
        (runs / f"none_s{seed}" / "summary.json").unlink()  # none's runs gone
        cached_run(runs, f"strong400_s{seed}", [5.0, 7.0])
    evaluate.main(runs, out)
    rows, again = read_csv(out / "results.csv")
    assert again == columns
    assert [r for r in rows if r["condition"] == "none"] == [r for r in first if r["condition"] == "none"]
    assert [r["condition"] for r in rows] == ["random"] * 6 + ["none"] * 6 + ["strong400"] * 6  # ORDER kept
    assert {r["return_mean"] for r in rows if r["condition"] == "strong400"} == {6.0}
    assert not (out / "curves.png").exists()  # drawn only from complete runs
    table = (out / "table.md").read_text()
    assert (
        "| learned reward, raw | 3 | 3.50" in table and "| learned reward, raw: recipe strong_400 | 3 | 6.00" in table
    )
    # paired by PPO seed against the raw reward (means 3.0, 3.5, 4.0): +3.00, +2.50, +2.00; mean 2.50, Student t
    # with 2 degrees of freedom: 4.303 x 0.5 / sqrt(3) = 1.24
    paired = (
        "| learned reward, raw: recipe strong_400 | +3.00, +2.50, +2.00 | 2.50 [1.26, 3.74] | +3.00, +2.50, +2.00 |"
    )
    assert paired in table and "| random actions | +" not in table
