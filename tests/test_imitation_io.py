"""Demonstrations to and from imitation's trajectory format: real demos survive the round trip, imitation's own
loader reads the export, and what T-REX cannot rank is refused in one line."""

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("imitation", reason="the imitation extra: pip install -e '.[imitation]' -c constraints.txt")

from imitation.data import serialize, types  # noqa: E402

from toolkit.cli import UserError  # noqa: E402
from toolkit.config import build_config  # noqa: E402
from trex.config import TrexConfig  # noqa: E402
from trex.demos.generate import generate_procgen_demonstrations  # noqa: E402
from trex.demos.store import load_demos, read_index  # noqa: E402
from trex.imitation_io import main  # noqa: E402
from trex.interop.imitation import ImitationIOConfig  # noqa: E402

GAME = "starpilot"


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory, tiny_checkpoints) -> Path:
    """Real demos of step 2: tiny checkpoints rolled out on training and held-out levels."""
    tmp = tmp_path_factory.mktemp("demos")
    tiny_checkpoints(tmp / "ppo", GAME, (100, 200))
    values = {
        "env_name": GAME,
        "checkpoint_dir": str(tmp / "ppo" / "checkpoints"),
        "demo_dir": str(tmp / "demos"),
        "num_demos": 4,
        "num_held_out_demos": 2,
        "num_envs": 2,
        "max_episode_steps": 40,
        "train_num_levels": 20,
        "device": "cpu",
    }
    generate_procgen_demonstrations(build_config(TrexConfig, values))
    return tmp / "demos"


def test_round_trip_gives_the_same_demos_and_imitation_reads_the_export(demo_dir, tmp_path):
    out, back = tmp_path / "trajectories", tmp_path / "back"
    assert main(["export", "--demo_dir", str(demo_dir), "--trajectories", str(out)]) == 8

    demos = load_demos(demo_dir)
    trajectories = serialize.load(out)  # imitation's own loader, which decodes a trajectory when it is read
    assert len(trajectories) == len(demos)
    for k in (0, len(demos) - 1):  # two suffice: it turns every pixel into a Python int, seconds per trajectory
        demo, traj = demos[k], trajectories[k]
        assert isinstance(traj, types.TrajectoryWithRew) and traj.terminal
        np.testing.assert_array_equal(traj.obs[:-1], demo.obs)
        np.testing.assert_array_equal(traj.obs[-1], demo.obs[-1])  # Procgen shows no frame after the last action
        np.testing.assert_array_equal(traj.acts, demo.actions)
        np.testing.assert_allclose(traj.rews, demo.rewards)
        assert traj.infos[-1]["procgen_demo"]["level_seed"] == demo.record.level_seed

    main(["import", "--trajectories", str(out), "--demo_dir", str(back)])
    assert read_index(back) == read_index(demo_dir)
    for a, b in zip(load_demos(back), demos, strict=True):
        for name in ("obs", "actions", "rewards"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_foreign_trajectories_take_the_game_and_level_set_given(tmp_path):
    rng = np.random.default_rng(0)
    obs = rng.integers(0, 256, (6, 64, 64, 3), dtype=np.uint8)
    infos = np.array([{"level_seed": 42}] + [{}] * 4)
    traj = types.TrajectoryWithRew(obs=obs, acts=np.arange(5), infos=infos, terminal=True, rews=np.ones(5, np.float32))
    serialize.save(tmp_path / "theirs", [traj])
    cfg = ImitationIOConfig(
        demo_dir=str(tmp_path / "ours"), trajectories=str(tmp_path / "theirs"), level_set="held_out"
    )
    main(["import", "--trajectories", cfg.trajectories, "--demo_dir", cfg.demo_dir, "--level_set", "held_out"])
    (record,) = read_index(cfg.demo_dir)
    assert (record.game, record.level_set, record.level_seed, record.length, record.ret) == (
        GAME,
        "held_out",
        42,
        5,
        5.0,
    )
    (demo,) = load_demos(cfg.demo_dir)
    np.testing.assert_array_equal(demo.obs, obs[:-1])


def test_trajectories_without_rewards_and_pickle_files_are_refused_in_one_line(tmp_path):
    obs = np.zeros((4, 64, 64, 3), np.uint8)
    serialize.save(tmp_path / "norew", [types.Trajectory(obs=obs, acts=np.zeros(3, int), infos=None, terminal=True)])
    pickled = tmp_path / "old.pkl"
    pickled.write_bytes(b"\x80\x04N.")
    for src, words in ((tmp_path / "norew", "without rewards"), (pickled, "pickle-based and not read")):
        with pytest.raises(UserError, match=words) as err:
            main(["import", "--trajectories", str(src), "--demo_dir", str(tmp_path / "ours")])
        assert "\n" not in str(err.value)
    assert not (tmp_path / "ours" / "index.csv").exists()
