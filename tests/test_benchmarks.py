"""The benchmarks run end to end at a tiny size and report what they measure: the counts they were told to run,
rates that are those counts over the measured seconds, and ratios of the figures they report (no timing asserted
beyond loose bounds)."""

import functools
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import yaml
from tiny_configs import flags

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "num_envs": 4,
    "num_steps": 8,
    "num_minibatches": 2,
    "update_epochs": 1,
    "channels": [4, 8, 8],
    "hidden_size": 16,
}
BATCH = 4 * 8  # steps per update at TINY


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_ppo_throughput_times_every_speed_option(tmp_path, bf16_allowed, monkeypatch, capsys):
    bench = _script("ppo_throughput")
    updates_run = []
    train = bench.TimedTrainer.train

    def counted(self):
        summary = train(self)
        updates_run.append(len(self.marks) - 1)  # one mark at the start, then one per update
        return summary

    monkeypatch.setattr(bench.TimedTrainer, "train", counted)
    res = bench.main(
        [
            *flags(TINY),
            *("--chunk_sizes", "0,4", "--env_threads", "1", "--floor_repeats", "1"),
            *("--warmup_updates", "1", "--updates", "2", "--torch_threads", "1", "--out", str(tmp_path / "b.json")),
        ]
    )
    saved = json.loads((tmp_path / "b.json").read_text())
    assert saved == json.loads(json.dumps(res))
    runs = saved["end_to_end"]
    assert set(runs) == {
        "trainer (update_chunk_size 64)",
        "trainer, plain one-pass update",
        "trainer, precision bf16",
        "trainer, env_groups 2",
        "trainer, bf16 + env_groups 2",
        "trainer, learned reward (RewardNet)",
    }
    assert updates_run == [1 + 2] * len(runs)  # each trainer ran the warm-up update and the 2 timed ones
    assert runs["trainer, precision bf16"]["update_chunk_size"] == 256
    assert saved["rollout_storage_bytes"] == 4 * 8 * (64 * 64 * 3 + 8 + 4 + 4 + 4 + 1)

    # the floors: the one env_threads candidate, both chunk sizes, the update floor at the faster minibatch's chunk
    assert saved["env_threads"] == 1 and set(saved["env_floor"]) == {"1"}
    env = saved["env_floor"]["1"]
    assert env["sps"] == pytest.approx(BATCH / env["wall_s"])
    floors = {p: saved[f"floors_{p}"] for p in ("fp32", "bf16")}
    for f in floors.values():
        minibatch = f["minibatch_by_chunk"]
        assert set(minibatch) == {"0", "4"}
        assert f["update"]["chunk"] == int(min(minibatch, key=lambda c: minibatch[c]["cpu_s"]))

    # each run: seconds per update, its SPS the batch over them, its phases parts of it, its ratios of the floors
    for name, run in runs.items():
        assert run["sps"] == pytest.approx(BATCH / run["wall_s"])
        assert set(run["phases_s"]) == {"env", "inference", "update"}
        assert sum(run["phases_s"].values()) <= run["wall_s"]
        f = floors["bf16" if "bf16" in name else "fp32"]
        floor_wall = env["wall_s"] + f["inference"]["wall_s"] + f["update"]["wall_s"]
        floor_cpu = env["cpu_s"] + f["inference"]["cpu_s"] + f["update"]["cpu_s"]
        assert run["floors_sum_wall_s"] == pytest.approx(floor_wall)
        assert run["overhead_ratio"] == pytest.approx(run["wall_s"] / floor_wall)
        assert run["overhead_ratio_cpu"] == pytest.approx(run["cpu_s"] / floor_cpu)
        overlap = max(env["wall_s"], f["inference"]["wall_s"]) + f["update"]["wall_s"]
        assert run["overlap_ratio"] == pytest.approx(run["wall_s"] / overlap)
        # a floor is a best case of a part: a whole update is not 10x faster, nor 100x slower, than their sum
        assert 0.1 < run["overhead_ratio"] < 100, (name, run["overhead_ratio"])
    main_run = runs["trainer (update_chunk_size 64)"]
    assert saved["sps"] == main_run["sps"] and saved["overhead_ratio"] == main_run["overhead_ratio"]
    assert saved["speedup_vs_default"] == pytest.approx({n: main_run["wall_s"] / r["wall_s"] for n, r in runs.items()})
    plain = runs["trainer, plain one-pass update"]
    assert saved["speedup_vs_plain"] == pytest.approx(plain["wall_s"] / main_run["wall_s"])
    out = capsys.readouterr().out
    assert f"per update of {BATCH} steps" in out
    assert all(f"end-to-end: {name}" in out for name in runs)


def _window_value(row: dict, key: str) -> float | None:
    return float(row[key]) if row[key] not in ("", None, "nan") else None


def test_curve_match_compares_the_plain_path_with_the_options(tmp_path, bf16_allowed):
    cfg = tmp_path / "ppo.yaml"
    # leaper: an untrained policy's episodes end within these steps, so the windows hold returns
    ppo = {**TINY, "env_name": "leaper", "num_levels": 2, "num_threads": 1, "eval_interval": 1, "total_timesteps": 96}
    cfg.write_text(yaml.safe_dump(ppo))
    res = _script("curve_match").main(
        ["--ppo_config", str(cfg), "--seeds", "0,1", "--out_dir", str(tmp_path / "out"), "--device", "cpu"]
    )
    assert (tmp_path / "out" / "curves.png").read_bytes().startswith(b"\x89PNG")
    saved = json.loads((tmp_path / "out" / "curve_match.json").read_text())
    assert saved == json.loads(json.dumps(res))
    runs = saved["runs"]
    assert set(runs) == {"plain_seed0", "changed_seed0", "plain_seed1", "changed_seed1"}
    for rows in runs.values():  # 96 steps asked, 32 per update: 3 updates
        assert [int(r["misc/total_timesteps"]) for r in rows] == [32, 64, 96]
    assert saved["seeds_done"] == [0, 1] and all(len(sps) == 2 for sps in saved["sps"].values())
    plain_cfg = yaml.safe_load((tmp_path / "out" / "plain_seed0" / "config.yaml").read_text())
    changed_cfg = yaml.safe_load((tmp_path / "out" / "changed_seed1" / "config.yaml").read_text())
    assert (plain_cfg["precision"], plain_cfg["env_groups"], plain_cfg["update_chunk_size"]) == ("fp32", 1, 0)
    assert (changed_cfg["precision"], changed_cfg["env_groups"], changed_cfg["seed"]) == ("bf16", 2, 1)

    # windows of 25% of 3 updates: the first update's figure (early) and the last's (late), per seed
    assert set(saved["windows"]) == {"early_eprewmean", "early_eval_eprewmean", "late_eprewmean", "late_eval_eprewmean"}
    held = 0
    for name, window in saved["windows"].items():
        when, key = name.split("_", 1)
        row = 0 if when == "early" else -1
        for variant in ("plain", "changed"):
            per_seed = [_window_value(runs[f"{variant}_seed{s}"][row], key) for s in (0, 1)]
            assert window["per_seed"][variant] == per_seed, (name, variant)
            values = [v for v in per_seed if v is not None]
            held += len(values)
            assert window[f"{variant}_mean"] == (pytest.approx(sum(values) / len(values)) if values else None)
        if window["plain_mean"] is not None and window["changed_mean"] is not None:
            assert window["gap"] == pytest.approx(window["changed_mean"] - window["plain_mean"])
        else:
            assert "gap" not in window
    assert held, "no window held a return: the check above compared only empty windows"


def test_reward_training_benchmark_measures_each_augmentation_beside_the_plain_trainer(tmp_path):
    from trex.config import TrexConfig

    bench = _script("reward_training")
    out = bench.main(
        [
            *("--out", str(tmp_path / "r.json"), "--seconds", "0.2", "--quality_pairs", "0"),
            *("--augment_repeats", "1", "--augmentations", "shift"),
        ]
    )
    assert json.loads((tmp_path / "r.json").read_text()) == json.loads(json.dumps(out))
    assert "quality" not in out  # --quality_pairs 0
    a, b, c = out["loop_2020"], out["reward_trainer"], out["floor"]
    # (a) one pair per step: the 2020 snippets are 20 to 99 frames each, not subsampled
    assert 40 <= a["frames_per_pair"] <= 2 * 99
    assert a["frames_per_s"] / a["pairs_per_s"] == pytest.approx(a["frames_per_pair"])
    # (b) the defaults: ten batches of pairs or more, seen once per epoch; 20-60 frame windows at stride 2
    defaults = TrexConfig()
    num_pairs = max(10 * defaults.batch_size, int(a["pairs_per_s"] * 0.2 * 8))
    assert b["pairs"] == defaults.epochs * num_pairs
    assert 2 * 10 <= b["frames_per_pair"] <= 2 * 30
    assert b["frames_per_s"] / b["pairs_per_s"] == pytest.approx(b["frames_per_pair"])
    # (c) and the ratios of the figures above
    assert c["batch"] == out["floor_study2020"]["batch"] == bench.FLOOR_BATCH
    assert out["floor_ratio"] == pytest.approx(b["frames_per_s"] / c["frames_per_s"])
    assert out["speedup"] == pytest.approx(b["pairs_per_s"] / a["pairs_per_s"])
    assert out["speedup"] > 1  # batches of 32 pairs against one pair per step
    # (d)
    assert set(out["augmentation"]) == {"shift"} < set(bench.AUGMENT_VARIANTS)
    for row in out["augmentation"].values():
        # the ratio is of the two measured rates, and a plain run cannot be infinitely faster or slower
        assert row["ratio"] == row["pairs_per_s"] / row["plain_pairs_per_s"]
        assert 0.05 < row["ratio"] < 5 and row["pairs"] == num_pairs


def test_demo_generation_plays_the_demos_asked_on_both_sides(tmp_path, monkeypatch):
    bench = _script("demo_generation")
    monkeypatch.setattr(bench, "forward_fps", functools.partial(bench.forward_fps, seconds=0.2))
    out = bench.main(
        [
            *("--num_demos", "3", "--max_episode_steps", "10", "--num_levels", "2"),
            *("--channels", "4,8,8", "--hidden_size", "16", "--out", str(tmp_path / "d.json")),
        ]
    )
    assert json.loads((tmp_path / "d.json").read_text()) == json.loads(json.dumps(out))
    assert (out["game"], out["num_demos"], out["max_episode_steps"]) == ("coinrun", 3, 10)
    assert out["network"] == {"channels": [4, 8, 8], "hidden_size": 16}
    for side in ("vectorised", "one_env_per_demo"):
        r = out[side]
        # 3 demos capped at 10 steps; a random coinrun agent neither dies nor wins within 10 steps of a start
        assert r["demo_frames"] == 3 * 10, side
        assert r["sps"] == pytest.approx(r["demo_frames"] / r["wall_s"])
        assert r["env_build_s"] <= r["wall_s"]
    assert out["speedup"] == pytest.approx(out["vectorised"]["sps"] / out["one_env_per_demo"]["sps"])
    assert set(out["forward_only_fps"]) == {"batch_1", "batch_3"}


def test_reward_net_cost_times_every_architecture_against_fast(monkeypatch, capsys):
    from trex.reward.net import ARCHITECTURES

    bench = _script("reward_net_cost")
    monkeypatch.setattr(bench, "FRAMES", 4)
    steps = []
    monkeypatch.setattr(bench.torch.optim.Adam, "step", lambda self, *a, **k: steps.append(1))
    bench.main()
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == [*ARCHITECTURES, "fast,"]
    assert lines[-1].startswith("fast, frame_stack 2")
    assert lines[0].endswith("/ fast = 1.0") and all("(4 frames, 1 thread)" in line for line in lines)
    assert len(steps) == 4 * (len(ARCHITECTURES) + 1)  # a warm-up and 3 timed steps each
