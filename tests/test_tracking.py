"""Weights & Biases tracking, offline (no network): what a tracked run writes is what TensorBoard gets, with the
resolved config and the figures; a study and a sweep put their steps in one group; no wandb, one line."""

import json
import struct
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from toolkit.cli import UserError
from toolkit.config import build_config
from toolkit.logger import STEP_KEY, read_progress
from toolkit.tracking import TrackingConfig, start_tracking

wandb_pb = pytest.importorskip("wandb.proto.wandb_internal_pb2", reason="the wandb extra: pip install -e '.[wandb]'")


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb_config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb_cache"))


def read_run(run_dir: Path) -> dict:
    """`_read_run` once wandb's service has written the run's exit record (it writes after `finish()` returns)."""
    deadline = time.time() + 30
    while "exit" not in (out := _read_run(run_dir))["kinds"] and time.time() < deadline:
        time.sleep(0.1)
    return out


def _read_run(run_dir: Path) -> dict:
    """The records of the one offline wandb run under run_dir: its run record, config, history rows and media.

    A .wandb file is a LevelDB-style log: a 7-byte header, then 32 KiB blocks of records, each with a 7-byte
    header (crc, length, type: 1 full, 2 first, 3 middle, 4 last piece), holding wandb's protobuf Records."""
    (path,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    raw, pos, pieces, records = path.read_bytes(), 7, b"", []
    while pos + 7 <= len(raw):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a header is padding
            pos += 32768 - pos % 32768
            continue
        _, length, kind = struct.unpack("<IHB", raw[pos : pos + 7])
        if kind == 0:
            break
        data, pos = raw[pos + 7 : pos + 7 + length], pos + 7 + length
        pieces = data if kind in (1, 2) else pieces + data
        if kind in (1, 4):
            records.append(pieces)
    out: dict = {"history": [], "config": {}, "kinds": []}
    for data in records:
        rec = wandb_pb.Record()
        rec.ParseFromString(data)
        kind = rec.WhichOneof("record_type")
        out["kinds"].append(kind)
        if kind == "run":
            out["run"] = rec.run
            out["config"].update({c.key: json.loads(c.value_json) for c in rec.run.config.update})
        elif kind == "history":
            out["history"].append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.history.item})
    out["media"] = sorted(p.name for p in path.parent.glob("files/media/**/*") if p.is_file())
    return out


def test_a_tracked_ppo_run_logs_what_tensorboard_gets_and_its_config(tmp_path):
    from baseline_agent.ppo import PPOConfig, PPOTrainer

    values = dict(env_name="starpilot", num_envs=4, num_steps=32, num_minibatches=2, update_epochs=1)
    values.update(channels=[4, 8, 8], hidden_size=32, num_threads=1, total_timesteps=384, device="cpu")
    values.update(track=True, wandb_project="proj", wandb_group="grp", run_dir=str(tmp_path / "ppo"))
    PPOTrainer(build_config(PPOConfig, values)).train()

    run = read_run(tmp_path / "ppo")
    assert (run["run"].project, run["run"].run_group) == ("proj", "grp")
    assert run["config"]["total_timesteps"] == 384 and run["config"]["channels"] == [4, 8, 8]
    rows = read_progress(tmp_path / "ppo" / "progress.csv")
    scalars = [h for h in run["history"] if "fps" in h]
    assert len(rows) == len(scalars) == 3
    for row, logged in zip(rows, scalars, strict=True):
        assert logged["_step"] == int(float(row[STEP_KEY]))
        tb_keys = {k for k, v in row.items() if k != STEP_KEY and v not in ("", "nan")}
        assert tb_keys == {k for k in logged if not k.startswith(("_", "images/"))}  # the curve joins the last row
        for key in tb_keys:
            assert logged[key] == pytest.approx(float(row[key]))
    assert any(name.startswith("learning_curve") and name.endswith(".png") for name in run["media"])


def test_reward_training_scalars_and_a_report_s_figures_and_video(tmp_path):
    from rec_video import Mp4Writer
    from trex.config import TrexConfig
    from trex.reward.trainer import TrainLog

    cfg = build_config(TrexConfig, {"track": True, "run_dir": str(tmp_path / "reward")})
    log = TrainLog(tmp_path / "reward", cfg)
    row = dict(step=1, pairs=64, loss=0.6, train_acc=0.5, val_acc=None, best_val_acc=None, inverse_acc=None)
    row |= dict(pairs_per_s=9.0, wall_s=1.0)
    log.write(row)
    log.close()
    (logged,) = read_run(tmp_path / "reward")["history"]
    assert logged["_step"] == 64 and logged["reward/loss"] == 0.6 and "reward/val_acc" not in logged
    assert "reward/inverse_acc" not in logged  # without the inverse-dynamics loss

    study = tmp_path / "study"
    (study / "ppo").mkdir(parents=True)
    import matplotlib.pyplot as plt

    plt.figure(figsize=(1, 1))
    plt.savefig(study / "ppo" / "curve.png")
    video = Mp4Writer(str(study / "policy.mp4"), 16, 16, 15)
    for k in range(3):
        video.add(np.full((16, 16, 3), 80 * k, np.uint8))
    video.close()
    (study / "report.md").write_text("![curve](ppo/curve.png) and ![missing](gone.png), [video](policy.mp4)")
    with start_tracking(TrackingConfig(track=True), study, {"k": 1}, "study") as tracker:
        tracker.log_report(study / "report.md")
    media = read_run(study)["media"]
    assert [m.split("_")[0] for m in media] == ["curve", "policy"] and media[1].endswith(".mp4")


def test_a_study_and_a_sweep_give_their_steps_one_group(tmp_path):
    from trex.pipeline.study_layout import StudyConfig
    from trex.pipeline.study_plan import step_configs
    from trex.pipeline.sweep_plan import SweepConfig, expand

    study = build_config(StudyConfig, {"track": True, "run_dir": str(tmp_path / "s1")})
    steps = step_configs(study)
    assert {(c.track, c.wandb_group) for c in (steps.ppo, steps.trex, steps.policy)} == {(True, "s1")}
    jobs = expand(build_config(SweepConfig, {"track": True, "name": "grid", "run_dir": str(tmp_path / "sw")}))
    assert len(jobs) > 3 and {(j.config.track, j.config.wandb_group) for j in jobs} == {(True, "grid")}
    assert {j.config.wandb_group for j in expand(build_config(SweepConfig, {"run_dir": str(tmp_path / "x")}))} == {
        "sweep"
    }


def test_track_without_wandb_is_refused_in_one_line(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb now raises ImportError
    with pytest.raises(UserError, match=r"pip install -e '\.\[wandb\]'") as err:
        start_tracking(TrackingConfig(track=True), tmp_path, {}, "ppo")
    assert "\n" not in str(err.value)
    assert start_tracking(TrackingConfig(track=False), tmp_path, {}, "ppo").run is None  # off: wandb never needed
