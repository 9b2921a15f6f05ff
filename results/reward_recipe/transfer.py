"""Where a reward model's clock-free ranking holds: its accuracy on time-aligned snippet pairs (a clock scores 0.5)
of new episodes of its training levels against the validation levels' demos, on pairs within one level and on pairs
of any two demos, each beside the true reward's accuracy on the same pairs (the ceiling).

    python results/reward_recipe/transfer.py results/reward_recipe runs/recipe GAME RECIPE[:LEVELS] ...

Reads runs/recipe/GAME/RECIPE/L<levels>_s<seed>/reward_model.pt and the demos of runs/labels/demos_GAME; writes
transfer.md and transfer.csv (one row per model and pair set; 1,000 pairs of 50-100 frames, every 2nd frame seen).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from toolkit.cli import UserError
from toolkit.files import write_csv, write_text
from toolkit.logger import fmt
from trex.config import TrexConfig
from trex.demos.store import Demo, load_demos
from trex.reward.net import load_reward_model
from trex.reward.pairs import concat_obs, create_training_data, label_figures
from trex.reward.trainer import RewardTrainer


def accuracies(run_dir: Path, sets: dict[str, list[Demo]]) -> list[dict]:
    net, _ = load_reward_model(run_dir / "reward_model.pt")
    trainer = RewardTrainer(net, TrexConfig(), torch.device("cpu"), verbose=False)
    rows = []
    for name, demos in sets.items():
        frames, offsets = concat_obs(demos)
        for same in (True, False):
            rng = np.random.default_rng(5)
            try:
                pairs = create_training_data(demos, 1000, 50, 100, 2, False, rng, time_aligned=True, same_level=same)
            except UserError:  # no two demos share a level (one episode per level)
                continue
            figures = label_figures(pairs, demos, trainer.accuracy(frames, offsets, pairs))
            rows.append(
                {
                    "demos": name,
                    "pairs": "within one level" if same else "any two demos",
                    "model": figures["model_accuracy"],
                    "true_reward": figures["true_reward_accuracy"],
                }
            )
    return rows


def main(out: Path, root: Path, game: str, chosen: list[str]) -> None:
    torch.set_num_threads(1)
    main_folder = Path("runs/labels") / f"demos_{game}"
    val = load_demos(main_folder, "val")
    rows = []
    for item in chosen:
        recipe, _, only = item.partition(":")
        for run_dir in sorted((root / game / recipe).glob("L*_s*")):
            levels = int(run_dir.name[1:].split("_")[0])
            if only and levels != int(only) or not (run_dir / "metrics.json").is_file():
                continue
            folder = main_folder if levels == 8 else main_folder / f"levels_{levels}"
            sets = {"new episodes, training levels": load_demos(folder, "new_episodes"), "validation levels": val}
            for r in accuracies(run_dir, sets):
                rows.append({"game": game, "recipe": recipe, "demo_levels": levels, "seed": run_dir.name, **r})
                print(rows[-1], flush=True)
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["game"], r["recipe"], r["demo_levels"], r["demos"], r["pairs"]), []).append(r)
    lines = [
        "# Where the clock-free ranking holds",
        "",
        "Accuracy on time-aligned snippet pairs (50-100 frames; a clock scores 0.5): model / true reward (the",
        "ceiling), mean over the models (seeds); each model's in transfer.csv.",
        "",
        "| game | recipe | training demos' levels | models | demos | pairs | model / true reward |",
        "|---|---|---|---|---|---|---|",
        *[
            f"| {g} | {recipe} | {levels} | {len(rs)} | {demos} | {pairs} | "
            f"{fmt(float(np.mean([r['model'] for r in rs])))} / {fmt(float(np.mean([r['true_reward'] for r in rs])))} |"
            for (g, recipe, levels, demos, pairs), rs in groups.items()
        ],
        "",
    ]
    write_text(out / "transfer.md", "\n".join(lines))
    write_csv(out / "transfer.csv", rows, list(rows[0]) if rows else [])
    print(f"wrote {out / 'transfer.md'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4:])
