"""The tiny step-1 sizes several test files train at, in one place: on the command line of baseline_agent/train.py
(tests/test_train.py, test_locks.py, test_faults.py, test_sweep.py) and as the `ppo` section of the study's and the
sweep's configs (tests/test_study.py, test_sweep.py). A test changes what it needs through `**changes`."""

from __future__ import annotations

from typing import Any

# Step 1 at its smallest: 4 envs x 16 steps an update, a 4-8-8 IMPALA net of width 16, no held-out evaluation,
# one procgen thread.
TINY_PPO: dict[str, Any] = {
    "num_envs": 4,
    "num_steps": 16,
    "num_minibatches": 2,
    "update_epochs": 1,
    "channels": [4, 8, 8],
    "hidden_size": 16,
    "eval_interval": 0,
    "num_threads": 1,
}

# The `ppo` section of a tiny study or sweep: 8 envs x 32 steps an update, a checkpoint after every update.
TINY_PPO_SECTION: dict[str, Any] = {**TINY_PPO, "num_envs": 8, "num_steps": 32, "save_interval": 1}


def flags(values: dict[str, Any]) -> list[str]:
    """`values` as command-line flags, in their order: `--key value`, a list comma-joined, a bool as true/false."""
    out: list[str] = []
    for key, value in values.items():
        if isinstance(value, list):
            value = ",".join(map(str, value))
        elif isinstance(value, bool):
            value = str(value).lower()
        out += [f"--{key}", str(value)]
    return out


def ppo_flags(**changes: Any) -> list[str]:
    """TINY_PPO, with `changes` over it, as flags of baseline_agent/train.py."""
    return flags({**TINY_PPO, **changes})


def ppo_section(**changes: Any) -> dict[str, Any]:
    """TINY_PPO_SECTION with `changes` over it: a fresh dict each call."""
    return {**TINY_PPO_SECTION, "channels": list(TINY_PPO_SECTION["channels"]), **changes}
