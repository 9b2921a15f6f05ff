"""Copy the demonstrators' checkpoints into the result, weights only (no optimizer or normaliser state), with their
training curve, so steps 2-3 rerun without hours of PPO:

    python results/level_generalisation/ship.py runs/lg/ppo_starpilot results/level_generalisation/demonstrators
"""

from __future__ import annotations

import sys

from baseline_agent.checkpoint import ship

if __name__ == "__main__":
    for path in ship(sys.argv[1], sys.argv[2]):
        print(path)
