"""The T-REX steps as commands: what the study (one cell, `trex/study.py`) and the sweep (a grid of cells,
`trex/sweep.py`) both build and run.

A `Step` is one step command with its validated config, the steps whose outputs it reads, and a "done" check owned
by the step's own module (PPO: `run_is_finished`; demos: `demos_are_complete`; reward model:
`reward_model_is_trained`). The configs of one cell are built here once: the policy's section starts from step 1's
PPO keys, the controls from the policy's, and every held-out evaluation, PPO's curve included, takes its levels
from the demos' held-out levels (`held_out_keys`), so that one key decides them.
"""

from __future__ import annotations

import dataclasses
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from baseline_agent.ppo_config import PPOConfig, run_is_finished
from toolkit.cli import UserError, exit_reason, oom_kills
from toolkit.config import build_config, config_dict
from toolkit.files import write_text
from trex.config import TrexConfig, held_out
from trex.policy.config import PolicyConfig

ROOT = Path(__file__).resolve().parents[2]
# control: the policies a learned-reward policy must beat, at its budget (PPO on the true reward, and on survival)
STAGES = ("ppo", "demos", "reward", "policy", "control")
SCRIPTS = {  # the command of each step, before `-c <config>`
    "ppo": ["baseline_agent/train.py"],
    "demos": ["trex/reward_model.py", "demos"],
    "reward": ["trex/reward_model.py", "train"],
    "policy": ["trex/train_policy.py"],
}


@dataclass
class Step:
    """One step command, with the steps whose outputs it reads and its place in a grid (for results tables).

    `config` is the step's validated config, written to `config_path` before the step runs; a step with no config
    of its own (the study's video) names the file it writes as `output` instead."""

    name: str
    stage: str
    command: list[str]
    config: Any = None
    config_path: Path | None = None
    needs: list[str] = field(default_factory=list)
    grid: dict = field(default_factory=dict)
    output: Path | None = None

    def done(self) -> bool:
        """Whether its outputs exist already, asked of the step's own module."""
        if self.stage in ("ppo", "policy", "control"):
            return run_is_finished(self.config)
        if self.stage == "demos":
            from trex.demos.generate import demos_are_complete

            return demos_are_complete(self.config)
        if self.stage == "reward":
            from trex.reward.fit import reward_model_is_trained

            return reward_model_is_trained(self.config)
        assert self.output is not None, f"step {self.name} has neither a config nor an output file"
        return self.output.is_file()


def config_step(
    name: str,
    stage: str,
    config: Any,
    config_path: Path,
    needs: list[str] | None = None,
    grid: dict | None = None,
    script: str | None = None,
) -> Step:
    """The step of `stage` that runs `config`, read from `config_path`, with the command of `script` (a key of
    SCRIPTS; the stage's own by default)."""
    command = ["python", *SCRIPTS[script or stage], "-c", str(config_path)]
    return Step(name, stage, command, config, config_path, list(needs or []), dict(grid or {}))


def write_step_configs(steps: list[Step]) -> None:
    """Each step's resolved config, where its command reads it."""
    for step in steps:
        if step.config_path is not None:
            write_text(step.config_path, yaml.safe_dump(config_dict(step.config), sort_keys=False))


# --------------------------------------------------------------------------- the configs of one cell
def build_section(cls: type, values: dict, where: str) -> Any:
    """`cls` built from `values`; a bad key's one line names where it was given."""
    try:
        return build_config(cls, values)
    except UserError as err:
        raise UserError(f"{where}: {err}") from None


def held_out_keys(trex: TrexConfig, ppo_keys: dict, where: str) -> dict:
    """The PPO keys of a run's held-out curve: the demos' held-out levels, the one source of truth for every
    held-out figure of a study or sweep. A PPO section that names other held-out levels is refused."""
    levels = held_out(trex)
    wanted = {"held_out_start_level": levels.start_level, "held_out_num_levels": levels.num_levels}
    for key, value in wanted.items():
        if key in ppo_keys and ppo_keys[key] != value:
            raise UserError(
                f"{where}: key '{key}' ({ppo_keys[key]}) differs from the trex section's held-out levels {levels}, "
                "which decide every held-out figure; set held_out_start_level and held_out_num_levels there"
            )
    return wanted


def ppo_config(shared: dict, start_level: int, num_levels: int, ppo_keys: dict, trex: TrexConfig, run_dir: str) -> Any:
    """Step 1's config: the shared keys, the training levels, the ppo section's keys, and the held-out levels of
    `trex` (the demos'), which the section may not contradict."""
    held = held_out_keys(trex, ppo_keys, "section 'ppo'")
    values = {**shared, "start_level": start_level, "num_levels": num_levels, **ppo_keys, **held, "run_dir": run_dir}
    return build_section(PPOConfig, values, "section 'ppo'")


def policy_config(
    ppo: PPOConfig, policy_keys: dict, trex: TrexConfig, reward_models: list[str], run_dir: str, **fixed: Any
) -> Any:
    """Step 4's config: step 1's PPO keys (its held-out levels, `trex`'s, included), then the policy section's,
    which may not name other held-out levels, then the reward models and `fixed` keys."""
    held_out_keys(trex, policy_keys, "section 'policy'")
    ppo_keys = {k: v for k, v in config_dict(ppo).items() if k != "run_dir"}
    values = {**ppo_keys, **policy_keys, **fixed, "reward_model": reward_models, "run_dir": run_dir}
    return build_section(PolicyConfig, values, "section 'policy'")


def one_frame_reward(reward: TrexConfig, where: str) -> None:
    """Refuse, before any step runs, a reward model that step 4 would refuse once steps 1-3 had run: step 4 scores
    its reward one frame per step, so a model reading stacked frames (frame_stack) cannot guide a policy."""
    if reward.frame_stack > 1:
        raise UserError(
            f"{where}: frame_stack {reward.frame_stack}: step 4 scores its reward one frame per step; measure a "
            "stacked reward without the policy step (a sweep's steps: demos, reward; a study's section 'lever')"
        )


def control_configs(policy: PolicyConfig, survival_dir: str, true_reward_dir: str) -> tuple[PolicyConfig, PPOConfig]:
    """The two controls a learned-reward policy must beat, with its budget, network and levels: PPO on survival
    alone (+1 per step) and PPO on the true reward."""
    keys = config_dict(policy)
    survival = build_config(PolicyConfig, {**keys, "reward": "survival", "run_dir": survival_dir})
    ppo_fields = {f.name for f in dataclasses.fields(PPOConfig)}
    true_reward = build_config(
        PPOConfig, {**{k: v for k, v in keys.items() if k in ppo_fields}, "run_dir": true_reward_dir}
    )
    return survival, true_reward


# --------------------------------------------------------------------------- launching a step
def start_command(command: list[str], log: IO[str] | None = None, ignore_usr2: bool = False) -> subprocess.Popen:
    """Start a step's command from the repository root with this Python; its output to `log` (or inherited).
    `ignore_usr2`: the step ignores SIGUSR2 (Slurm's warning of a time limit, meant for the task around it)."""
    kwargs: dict[str, Any] = {} if log is None else {"stdout": log, "stderr": subprocess.STDOUT}
    if ignore_usr2:
        kwargs["preexec_fn"] = lambda: signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    return subprocess.Popen([sys.executable, *command[1:]], cwd=ROOT, **kwargs)


def run_step(step: Step) -> float:
    """Run one step to its end, its output streamed here; its wall time in seconds. A failure is one line naming
    the step, why it ended (an OOM kill among them) and the command that resumes it."""
    print(f"\n=== {step.name}\n$ {shlex.join(step.command)}", flush=True)
    start, kills = time.time(), oom_kills()
    proc = start_command(step.command)
    try:
        code = proc.wait()
    finally:  # SIGTERM or Ctrl-C: the step stops too (it resumes exactly on the rerun)
        if proc.poll() is None:
            proc.terminate()
            proc.wait()
    if code != 0:
        raise UserError(
            f"step '{step.name}' failed ({exit_reason(code, kills)}); rerun the same command to resume it, or run it "
            f"alone: {shlex.join(step.command)}"
        )
    return time.time() - start
