"""Train the reward models of one step-3 recipe (recipes.yaml) on one demo folder, over seeds; finished models are
kept, so a rerun resumes.

    python results/reward_recipe/run.py GAME RECIPE LEVELS SEEDS [--key value ...]

GAME's config is results/level_generalisation/trex_GAME.yaml with its demos in runs/labels/demos_GAME (built by
results/reward_recipe/run.sh); LEVELS is the training demos' folder (8: the main one; N: levels_N); SEEDS how many
seeds (0, 1, ...) or a range of them (2-4); 100 training demos unless the recipe says otherwise ("{demos}" in a
recipe's flags stands for runs/labels/demos_GAME). Models go to
runs/recipe/GAME/RECIPE/L<LEVELS>_s<seed>; extra flags (e.g. --torch_threads 1) follow the recipe's.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from toolkit.cli import UserError, run_main
from toolkit.config import load_yaml, parse_config
from toolkit.files import exclusive
from trex.config import TrexConfig
from trex.reward.fit import finished_run, fit_and_evaluate, load_demo_sets

HERE = Path(__file__).parent


def main(argv: list[str]) -> None:
    if len(argv) < 4:
        raise UserError("usage: results/reward_recipe/run.py GAME RECIPE LEVELS SEEDS [--key value ...]")
    game, recipe, levels, extra = argv[0], argv[1], int(argv[2]), argv[4:]
    first, _, last = argv[3].partition("-")  # N: seeds 0 to N-1; A-B: seeds A to B (one process per range)
    seeds = range(int(first), int(last) + 1) if last else range(int(first))
    recipes = load_yaml(HERE / "recipes.yaml")
    if recipe not in recipes:
        raise UserError(f"unknown recipe '{recipe}' (choose one of: {', '.join(recipes)})")
    demos = Path("runs/labels") / f"demos_{game}"
    flags = ["-c", f"results/level_generalisation/trex_{game}.yaml", "--demo_dir", str(demos), "--num_demos", "100"]
    flags += [flag.replace("{demos}", str(demos)) for flag in recipes[recipe]] + ["--name", recipe, *extra]
    cfg = parse_config(TrexConfig, flags, prog="results/reward_recipe/run.py", description=__doc__.splitlines()[0])
    folder = demos if levels == 8 else demos / f"levels_{levels}"
    demo_sets = load_demo_sets(cfg, folder)
    for seed in seeds:
        run_dir = Path("runs/recipe") / game / recipe / f"L{levels}_s{seed}"
        sub = dataclasses.replace(cfg, seed=seed, run_dir=str(run_dir))
        with exclusive(run_dir):  # one process per model: a second is refused in one line
            metrics = finished_run(sub) or fit_and_evaluate(sub, demo_sets, verbose=False)
        v = metrics.get("validation", {})  # held-out figures are looked at once a recipe is chosen: table.py
        print(
            f"{game} {recipe} L{levels} seed {seed}: validation centred {v.get('centred', {}).get('spearman')} "
            f"(length {v.get('length_baseline', {}).get('spearman')}); {metrics['wall_time_s']:.0f}s",
            flush=True,
        )


if __name__ == "__main__":
    run_main(main)
