"""Issue 5: the quickstart pipeline end to end at a tiny size, its report, and skipping what exists."""

import json

import av
import pytest
import yaml

from toolkit.cli import UserError
from trex.study import main as study_main

MICRO = {
    "env_name": "starpilot", "num_levels": 50, "torch_threads": 1, "eval_episodes": 4, "video_steps": 30,
    "ppo": {"num_envs": 8, "num_steps": 32, "num_minibatches": 2, "update_epochs": 1, "channels": [4, 8, 8],
            "hidden_size": 32, "total_timesteps": 768, "save_interval": 1, "eval_interval": 1, "num_threads": 1},
    "trex": {"num_demos": 10, "num_test_demos": 6, "max_episode_steps": 60, "num_envs": 8, "num_pairs": 100,
             "min_snippet_length": 10, "max_snippet_length": 20, "epochs": 1},
    "policy": {"total_timesteps": 512},
}


@pytest.fixture
def study(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the steps' own processes
    cfg = tmp_path / "micro.yaml"
    cfg.write_text(yaml.safe_dump({**MICRO, "run_dir": str(tmp_path / "run")}))
    return cfg, tmp_path / "run"


def test_quickstart_pipeline_runs_end_to_end_and_reports_every_section(study, capsys):
    cfg, run = study
    report = study_main(["-c", str(cfg)])
    text = report.read_text()
    for heading in ("## Headline", "## 1. Demonstrators", "## 2-3. The learned reward",
                    "## 4. Policy on the learned reward", "## Commands", "## Wall time"):
        assert heading in text
    assert "| train | 10 |" in text and "| test | 6 |" in text  # the demonstrations' return range
    assert "length baseline Spearman" in text and "| test levels | 6 |" in text
    for label in ("T-REX policy (learned reward only)", "final demonstrator (true reward)", "uniform random actions"):
        assert text.count(label) == 2  # training and held-out levels
    for image in ("ppo/learning_curve.png", "reward/predicted_vs_true.png", "reward/reward_by_time.png",
                  "reward/cumulative_reward.png", "policy/learning_curve.png"):
        assert f"]({image})" in text and (run / image).is_file()
    assert "python trex/train_policy.py -c" in text and "configs/ppo/reference.yaml" in text
    with av.open(str(run / "policy.mp4")) as video:
        assert sum(1 for _ in video.decode(video=0)) == 30
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert evaluation["levels"]["test_levels"][0] == 50  # held-out levels start after the training ones
    metrics = json.loads((run / "reward/metrics.json").read_text())
    assert f"Spearman {metrics['test_levels']['spearman']:.2f}" in text  # the report shows what was measured

    capsys.readouterr()
    study_main(["-c", str(cfg)])  # everything exists: every step is skipped
    out = capsys.readouterr().out
    assert out.count("outputs exist, skipped") == 5


def test_a_bad_key_in_a_section_names_the_section(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "run"), "trex": {"num_demoz": 3}}))
    with pytest.raises(UserError, match="section 'trex': unknown config key 'num_demoz'"):
        study_main(["-c", str(cfg)])
