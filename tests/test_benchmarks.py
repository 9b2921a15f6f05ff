"""The benchmarks run end to end at a tiny size and report what their docs promise (no timing asserted)."""

import importlib.util
import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "num_envs": 4,
    "num_steps": 8,
    "num_minibatches": 2,
    "update_epochs": 1,
    "channels": [4, 8, 8],
    "hidden_size": 16,
}


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_ppo_throughput_times_every_speed_option(tmp_path, bf16_allowed):
    bench = _script("ppo_throughput")
    args = [f"--{k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in TINY.items()]
    res = bench.main(
        [
            *args,
            "--chunk_sizes",
            "0,4",
            "--env_threads",
            "1",
            "--floor_repeats",
            "1",
            "--updates",
            "1",
            "--torch_threads",
            "1",
            "--out",
            str(tmp_path / "b.json"),
        ]
    )
    saved = json.loads((tmp_path / "b.json").read_text())
    assert saved["sps"] == res["sps"] > 0 and saved["overhead_ratio"] > 0
    assert set(saved["end_to_end"]) == {
        "trainer (update_chunk_size 64)",
        "trainer, plain one-pass update",
        "trainer, precision bf16",
        "trainer, env_groups 2",
        "trainer, bf16 + env_groups 2",
        "trainer, learned reward (RewardNet)",
    }
    assert saved["end_to_end"]["trainer, precision bf16"]["update_chunk_size"] == 256
    assert {"floors_fp32", "floors_bf16"} <= set(saved)
    assert saved["rollout_storage_bytes"] == 4 * 8 * (64 * 64 * 3 + 8 + 4 + 4 + 4 + 1)


def test_curve_match_compares_the_plain_path_with_the_options(tmp_path, bf16_allowed):
    cfg = tmp_path / "ppo.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                **TINY,
                "env_name": "coinrun",
                "num_levels": 2,
                "num_threads": 1,
                "eval_interval": 1,
                "total_timesteps": 96,
            }
        )
    )
    res = _script("curve_match").main(
        ["--ppo_config", str(cfg), "--seeds", "0,1", "--out_dir", str(tmp_path / "out"), "--device", "cpu"]
    )
    assert (tmp_path / "out" / "curves.png").stat().st_size > 0
    saved = json.loads((tmp_path / "out" / "curve_match.json").read_text())
    assert set(saved["runs"]) == {"plain_seed0", "changed_seed0", "plain_seed1", "changed_seed1"}
    assert all(len(rows) == 3 for rows in saved["runs"].values())  # 96 steps / 32 per update
    plain_cfg = yaml.safe_load((tmp_path / "out" / "plain_seed0" / "config.yaml").read_text())
    changed_cfg = yaml.safe_load((tmp_path / "out" / "changed_seed1" / "config.yaml").read_text())
    assert (plain_cfg["precision"], plain_cfg["env_groups"], plain_cfg["update_chunk_size"]) == ("fp32", 1, 0)
    assert (changed_cfg["precision"], changed_cfg["env_groups"], changed_cfg["seed"]) == ("bf16", 2, 1)
    assert set(res["windows"]) == {"early_eprewmean", "early_eval_eprewmean", "late_eprewmean", "late_eval_eprewmean"}


def test_reward_training_benchmark_measures_each_augmentation_beside_the_plain_trainer(tmp_path):
    bench = _script("reward_training")
    out = bench.main(
        [
            *("--out", str(tmp_path / "r.json"), "--seconds", "0.2", "--quality_pairs", "0"),
            *("--augment_repeats", "1", "--augmentations", "shift"),
        ]
    )
    assert json.loads((tmp_path / "r.json").read_text())["augmentation"] == out["augmentation"]
    assert set(out["augmentation"]) == {"shift"} < set(bench.AUGMENT_VARIANTS)
    for row in out["augmentation"].values():
        # the ratio is of the two measured rates, and a plain run cannot be infinitely faster or slower
        assert row["ratio"] == row["pairs_per_s"] / row["plain_pairs_per_s"]
        assert 0.05 < row["ratio"] < 5 and row["pairs"] >= 320
