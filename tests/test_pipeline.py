"""The study and the sweep build their steps from one module (trex/pipeline/steps.py): one source of truth for the
held-out levels, whichever figure they are for."""

import pytest

from baseline_agent.ppo_config import eval_levels
from toolkit.cli import UserError
from toolkit.config import build_config, load_yaml
from trex.config import held_out
from trex.pipeline.study_layout import StudyConfig
from trex.pipeline.study_plan import evaluation_levels, plan, step_configs
from trex.pipeline.sweep_plan import SweepConfig, expand


def quickstart(tmp_path, **changes) -> StudyConfig:
    values = {**load_yaml("configs/quickstart.yaml"), "run_dir": str(tmp_path / "study"), **changes}
    return build_config(StudyConfig, values)


def test_every_held_out_figure_of_a_study_is_on_the_same_levels(tmp_path):
    c = step_configs(quickstart(tmp_path))
    held = held_out(c.trex)
    assert held.start_level == 1_000_000 and held.num_levels == 25  # the quickstart's trex keys
    runs = [c.ppo, c.policy, c.survival, c.true_reward]
    assert all(run is not None and eval_levels(run) == held for run in runs)
    assert evaluation_levels(c)["held_out"] == held


def test_a_study_section_naming_other_held_out_levels_is_refused_in_one_line(tmp_path):
    for section in ("ppo", "policy"):
        cfg = quickstart(tmp_path, **{section: {"held_out_num_levels": 50}})
        with pytest.raises(UserError, match=f"section '{section}': key 'held_out_num_levels' \\(50\\) differs"):
            step_configs(cfg)
    same = quickstart(tmp_path, ppo={"held_out_num_levels": 25, "held_out_start_level": 1_000_000})
    assert eval_levels(step_configs(same).ppo) == held_out(step_configs(same).trex)


def test_every_held_out_figure_of_a_sweep_is_on_its_demos_held_out_levels(tmp_path):
    cfg = SweepConfig(
        run_dir=str(tmp_path / "run"),
        games=["starpilot"],
        num_levels=20,
        demo_levels=[8, 0],
        num_demos=[12],
        seeds=[0],
        steps=["ppo", "demos", "reward", "policy"],
        trex={"held_out_num_levels": 30},
    )
    jobs = expand(cfg)
    demos = [j.config for j in jobs if j.stage == "demos"]
    held = {held_out(d) for d in demos}
    assert len(held) == 1 and next(iter(held)).start_level == 20 and next(iter(held)).num_levels == 30
    runs = [j.config for j in jobs if j.stage in ("ppo", "policy")]
    assert len(runs) == 3 and all(eval_levels(r) in held for r in runs)


def test_each_study_step_reads_only_what_the_steps_before_it_write(tmp_path):
    cfg = quickstart(tmp_path)
    steps = plan(cfg, step_configs(cfg))
    seen: set[str] = set()
    for step in steps:
        assert set(step.needs) <= seen, f"{step.name} needs a later step"
        seen.add(step.name)
    assert [s.stage for s in steps][:2] == ["ppo", "demos"] and steps[-1].stage == "video"
    assert not any(s.done() for s in steps)  # nothing has run in this folder


def test_an_old_level_set_key_is_refused_in_one_line_naming_the_new_one(tmp_path):
    from baseline_agent.ppo_config import PPOConfig
    from toolkit.config import parse_config
    from trex.config import TrexConfig

    with pytest.raises(UserError, match="config key 'test_start_level' is now called 'held_out_start_level'"):
        build_config(TrexConfig, {"test_start_level": 5})
    with pytest.raises(UserError, match="config key 'eval_num_levels' is now called 'held_out_num_levels'"):
        parse_config(PPOConfig, ["--eval_num_levels", "9"], prog="x", description="x")
    old = tmp_path / "old.yaml"
    old.write_text("num_test_demos: 4\n")
    with pytest.raises(UserError, match="'num_test_demos' is now called 'num_held_out_demos'"):
        parse_config(TrexConfig, ["-c", str(old)], prog="x", description="x")


def test_files_written_under_the_old_level_set_names_are_read_as_todays(tmp_path):
    import json

    from baseline_agent.ppo_config import PPOConfig
    from toolkit.config import config_dict, diff_configs
    from trex.demos.store import DemoRecord, parse_record
    from trex.results import read_evaluation, read_metrics

    fields = {f: "0" for f in DemoRecord.__dataclass_fields__}
    fields.update(game="starpilot", distribution_mode="easy", file="x.npz", level_range="0+1", level_set="test")
    assert parse_record(fields).level_set == "held_out"
    assert parse_record({**fields, "level_set": "train_eval"}).level_set == "new_episodes"
    block = {"spearman": 0.5}
    (tmp_path / "metrics.json").write_text(json.dumps({"train_levels": block, "test_levels": block, "seed": 1}))
    metrics = read_metrics(tmp_path / "metrics.json")
    assert metrics["new_episodes"] == metrics["held_out"] == block and "test_levels" not in metrics
    levels = {"train_levels": [0, 8], "test_levels": [100, 5]}
    (tmp_path / "evaluation.json").write_text(json.dumps({"levels": levels, "random": {"test_levels": {"mean": 1}}}))
    evaluation = read_evaluation(tmp_path / "evaluation.json")
    assert evaluation["levels"] == {"training_levels": [0, 8], "held_out": [100, 5]}
    assert evaluation["random"] == {"held_out": {"mean": 1}}
    # a PPO run's config.yaml saved under the old key resumes under the new one (resume_point diffs them)
    now = config_dict(PPOConfig(held_out_num_levels=7))
    saved = {k: v for k, v in now.items() if k != "held_out_num_levels"} | {"eval_num_levels": 7}
    assert diff_configs(saved, now, ()) == [] and diff_configs({**saved, "eval_num_levels": 8}, now, ())
