"""Fails if PPO stops learning: on one coinrun level, a short CPU run must clearly beat a random policy,
with the plain settings and with the speed options (bf16 autocast, two pipelined env groups). On a CPU that
emulates bf16 (10x slower) the bf16 run is skipped, saying so, and the env groups are checked in fp32."""

import numpy as np
import pytest

from baseline_agent.checkpoint import list_checkpoints, load_policy
from baseline_agent.envs import LevelSet
from baseline_agent.evaluation import run_episodes
from baseline_agent.train import main as train_main
from toolkit.runtime import native_bf16

LEVEL = LevelSet(start_level=3, num_levels=1)  # a random policy reaches the coin on ~45% of tries here


NO_BF16 = "this CPU emulates bf16 (no AVX512-BF16 or AMX): 10x slower; its bf16 path is checked in test_fast_paths"
SPEED_OPTIONS = [
    pytest.param([], id="plain"),
    pytest.param(
        ["--precision", "bf16", "--env_groups", "2"],
        id="bf16+env_groups",
        marks=pytest.mark.skipif(not native_bf16(), reason=NO_BF16),
    ),
    *([] if native_bf16() else [pytest.param(["--env_groups", "2"], id="env_groups")]),
]


@pytest.fixture(scope="module")
def random_episodes() -> list[dict]:
    """A random policy's 32 episodes on the level, played once for every parametrisation."""
    return run_episodes(None, "coinrun", "easy", LEVEL, 32, 16, seed=123)


@pytest.mark.parametrize("speed_options", SPEED_OPTIONS)
def test_ppo_beats_a_random_policy_on_its_training_level(tmp_path, speed_options, random_episodes):
    run = tmp_path / "run"
    train_main(
        [
            "--env_name",
            "coinrun",
            "--start_level",
            str(LEVEL.start_level),
            "--num_levels",
            "1",
            "--num_envs",
            "16",
            "--num_steps",
            "64",
            "--num_minibatches",
            "4",
            "--update_epochs",
            "3",
            "--channels",
            "8,16,16",
            "--hidden_size",
            "64",
            "--learning_rate",
            "1e-3",
            "--gamma",
            "0.99",
            "--total_timesteps",
            "6144",  # 6 updates; at 4,096 steps both already win all 32 episodes, 258-279 steps long (random: 780)
            "--eval_interval",
            "0",
            "--save_interval",
            "100",
            "--num_threads",
            "1",
            "--run_dir",
            str(run),
            *speed_options,
        ]
    )
    policy, _ = load_policy(list_checkpoints(run / "checkpoints")[-1])
    episodes = {"trained": run_episodes(policy, "coinrun", "easy", LEVEL, 32, 16, seed=123), "random": random_episodes}
    ret = {k: np.mean([e["ret"] for e in v]) for k, v in episodes.items()}
    length = {k: np.mean([e["length"] for e in v]) for k, v in episodes.items()}
    assert ret["random"] < 7.0, "the level became easy for a random policy; pick another"
    assert ret["trained"] >= ret["random"] + 3.0, ret
    assert length["trained"] < 0.5 * length["random"], length
