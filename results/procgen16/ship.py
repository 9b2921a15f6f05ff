"""Ship one game's demonstrators into results/procgen16/demonstrators/GAME: first play the run's last checkpoint and
random actions on the benchmark's held-out levels (100 episodes each, the same levels and seed), and ship only where
the last checkpoint clearly outplays random (its mean above random's by more than twice the standard error of the
difference) and passes the shipped demonstrators' test too (32 episodes, by more than 0.5:
baseline_agent/evaluation.py: outplays_random); then 8 checkpoints spread over the run, weights only in fp16, with
the run's curve, config and summary, and `strength.json` (both sets of returns; also written to the run folder
whatever the verdict).

    python results/procgen16/ship.py chaser            # from runs/p16/ppo_chaser
    python results/procgen16/ship.py chaser --count 8 --run runs/p16/ppo_chaser
    python results/procgen16/ship.py starpilot --run results/level_generalisation/demonstrators --check   # measure only
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from baseline_agent.checkpoint import list_checkpoints, ship
from baseline_agent.envs import GAMES, LevelSet
from baseline_agent.evaluation import checkpoint_returns, outplays_random
from toolkit.cli import UserError, run_main
from toolkit.files import write_json

HERE = Path(__file__).resolve().parent
HELD_OUT = LevelSet(1_000_000, 25)  # the held-out levels of every result of this toolkit's level studies
EPISODES = 100


def strength(run: Path, game: str) -> dict:
    """The returns of the run's last checkpoint and of random actions on the held-out levels, and whether the
    checkpoint clearly outplays random."""
    found = list_checkpoints(run / "checkpoints")
    if not found:
        raise UserError(f"no step_*.pt checkpoints in {run / 'checkpoints'}")
    figures: dict = {"levels": str(HELD_OUT), "episodes": EPISODES, "checkpoint": found[-1].name}
    for name, checkpoint in (("last", found[-1]), ("random", None)):
        figures[name] = checkpoint_returns(checkpoint, game, "easy", HELD_OUT, EPISODES)
    last, rand = figures["last"], figures["random"]
    margin = 2 * math.sqrt(last["std"] ** 2 / last["n"] + rand["std"] ** 2 / rand["n"])
    passes, mine, chance = outplays_random(found[-1], game, "easy", HELD_OUT)
    figures["test"] = {"last": mine, "random": chance, "passes": passes}  # tests/test_shipped_demonstrators.py's
    figures["outplays_random"] = last["mean"] - rand["mean"] > margin and passes
    return figures


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="results/procgen16/ship.py", description=__doc__.splitlines()[0])
    parser.add_argument("game", choices=GAMES)
    parser.add_argument("--run", help="the PPO run folder (default runs/p16/ppo_GAME)")
    parser.add_argument("--count", type=int, default=8, help="checkpoints to ship, spread over the run")
    parser.add_argument("--check", action="store_true", help="measure and write strength.json only, ship nothing")
    args = parser.parse_args(argv)
    run = Path(args.run or f"runs/p16/ppo_{args.game}")
    out = HERE / "demonstrators" / args.game
    if out.exists() and not args.check:
        raise UserError(f"{out} exists: remove it to ship {args.game} again")
    figures = strength(run, args.game)
    write_json(run / "strength.json", figures)  # kept with the run whatever the verdict (results/procgen16/table.py)
    last, rand = figures["last"], figures["random"]
    test = figures["test"]
    verdict = (
        f"{args.game}: last checkpoint {last['mean']:.2f} against random {rand['mean']:.2f} on {HELD_OUT} levels "
        f"(the shipped test's 32 episodes: {test['last']:.2f} against {test['random']:.2f})"
    )
    if args.check:
        print(f"{verdict}: {'clearly better' if figures['outplays_random'] else 'not clearly better'}", flush=True)
        return
    if not figures["outplays_random"]:
        raise UserError(f"{verdict}: not clearly better, not shipped; train longer (train_demonstrators.sh)")
    shipped = ship(run, out, args.count, half=True)
    write_json(out / "strength.json", figures)
    size = sum(p.stat().st_size for p in shipped)
    print(f"{verdict}: shipped {len(shipped)} checkpoints ({size / 1e6:.2f} MB) -> {out}", flush=True)


if __name__ == "__main__":
    run_main(main)
