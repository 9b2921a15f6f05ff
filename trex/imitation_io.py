"""Demonstrations to and from imitation's trajectory format (trex/interop/imitation.py), so either project can
rank, train on or evaluate the other's trajectories.

    python -m trex.imitation_io export --demo_dir runs/demos --trajectories runs/demos_imitation
    python -m trex.imitation_io import --trajectories rollouts/ --demo_dir runs/imported --env_name starpilot
"""

from __future__ import annotations

from toolkit.cli import UserError, require_extra, run_main
from toolkit.config import parse_config
from trex.interop.imitation import VERBS, ImitationIOConfig, export_demos, import_demos


def main(argv: list[str]) -> object:
    if not argv or argv[0] not in VERBS:
        raise UserError(f"the first argument is one of: {', '.join(VERBS)} (then --help lists the keys)")
    verb = argv[0]
    cfg = parse_config(
        ImitationIOConfig, argv[1:], prog=f"python -m trex.imitation_io {verb}", description=__doc__.splitlines()[0]
    )
    require_extra("imitation", "imitation's trajectory format", "datasets", "imitation")
    if verb == "export":
        count = export_demos(cfg.demo_dir, cfg.trajectories)
        print(f"exported {count} demos of {cfg.demo_dir} -> {cfg.trajectories}")
        return count
    records = import_demos(cfg.trajectories, cfg.demo_dir, cfg)
    print(f"imported {len(records)} trajectories of {cfg.trajectories} -> {cfg.demo_dir}")
    return records


if __name__ == "__main__":
    run_main(main)
