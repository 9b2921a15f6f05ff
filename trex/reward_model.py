"""Steps 2 and 3 of T-REX on Procgen, one command with four verbs:

python trex/reward_model.py demos -c configs/trex/coinrun.yaml   # ranked demonstrations (step 2)
python trex/reward_model.py train -c configs/trex/coinrun.yaml   # the reward model (step 3)
python trex/reward_model.py sweep -c configs/trex/coinrun.yaml   # correlation vs number of demos
python trex/reward_model.py picture -c configs/trex/coinrun.yaml # what a trained reward responds to (run_dir's)
"""

from __future__ import annotations

import sys

from toolkit.cli import UserError, run_main
from toolkit.config import parse_config
from trex.config import TrexConfig

VERBS = ("demos", "train", "sweep", "picture")


def main(argv: list[str]) -> object:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        print("Each verb takes -c FILE.yaml and --key value flags; '<verb> --help' lists the keys.")
        if not argv:
            sys.exit(2)
        return None
    verb, rest = argv[0], argv[1:]
    if verb not in VERBS:
        raise UserError(f"unknown command '{verb}' (choose one of: {', '.join(VERBS)})")
    cfg = parse_config(TrexConfig, rest, prog=f"trex/reward_model.py {verb}", description=__doc__.splitlines()[0])
    if verb == "demos":
        from trex.demos.generate import generate_procgen_demonstrations

        return generate_procgen_demonstrations(cfg)
    if verb == "train":
        from trex.reward.fit import train_reward_model

        return train_reward_model(cfg)
    if verb == "picture":
        from trex.reward.fit import draw_picture

        return draw_picture(cfg)
    from trex.reward.demo_count_curve import run_sweep

    return run_sweep(cfg)


if __name__ == "__main__":
    run_main(main)
