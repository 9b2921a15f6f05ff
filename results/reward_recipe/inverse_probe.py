"""Can a reward net's encoder learn a game's actions at all? The inverse-dynamics loss alone (no ranking loss), trained
on the transitions of a demo folder's training demos and scored on the validation demos' (levels of their own),
beside always naming the most common action.

    python results/reward_recipe/inverse_probe.py GAME NET STEPS [LEARNING_RATE] [SEED]

GAME's demos are runs/labels/demos_GAME (results/reward_recipe/run.sh): training transitions from its levels_512
folder's 400 demos, validation ones from its validation demos; NET a reward_net (fast, pooled, ...); batches of 64
transitions; a line every STEPS/8 steps; writes runs/recipe/GAME/inverse_probe_NET_STEPS.json.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from toolkit.cli import UserError, run_main
from toolkit.files import write_json
from trex.demos.store import load_demos
from trex.reward.auxiliary import InverseDynamics, demo_transitions
from trex.reward.net import RewardNet
from trex.reward.pairs import concat_obs

BATCH = 64
SCORED = 2000  # validation transitions per check


def main(argv: list[str]) -> None:
    if len(argv) < 3:
        raise UserError("usage: results/reward_recipe/inverse_probe.py GAME NET STEPS [LEARNING_RATE] [SEED]")
    game, arch, steps = argv[0], argv[1], int(argv[2])
    lr = float(argv[3]) if len(argv) > 3 else 1e-3
    seed = int(argv[4]) if len(argv) > 4 else 0
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    folder = Path("runs/labels") / f"demos_{game}"
    train, val = load_demos(folder / "levels_512", "train"), load_demos(folder, "val")
    if not train or not val:
        raise UserError(f"no training demos in {folder / 'levels_512'} or validation demos in {folder}: run run.sh")
    demos = train + val
    frames, offsets = concat_obs(demos)
    seen = demo_transitions(demos, offsets, list(range(len(train))))
    unseen = demo_transitions(demos, offsets, list(range(len(train), len(demos))))
    net = RewardNet(arch, 1, frames.shape[1:])
    head = InverseDynamics(net)
    optimizer = torch.optim.Adam([*net.parameters(), *head.parameters()], lr=lr)
    rng, scoring = np.random.default_rng(seed), np.random.default_rng([seed, 1])
    rows, right = [], []
    for step in range(1, steps + 1):
        loss, hit = head.loss(net, frames, seen, BATCH, rng)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        right.append(hit.item())
        if step % max(1, steps // 8) == 0 or step == steps:
            with torch.no_grad():
                val_acc = head.loss(net, frames, unseen, SCORED, scoring)[1].item()
            rows.append({"step": step, "train_acc": float(np.mean(right)), "val_acc": val_acc})
            right = []
            print(f"step {step}: train {rows[-1]['train_acc']:.3f}, validation levels {val_acc:.3f}", flush=True)
    common = float(np.bincount(unseen.actions).max() / len(unseen.actions))
    print(f"always the most common action: {common:.3f} on the validation levels", flush=True)
    out = Path("runs/recipe") / game / f"inverse_probe_{arch}_{steps}.json"
    write_json(out, {"game": game, "net": arch, "learning_rate": lr, "seed": seed, "rows": rows, "most_common": common})
    print(f"wrote {out}", flush=True)


if __name__ == "__main__":
    run_main(main)
