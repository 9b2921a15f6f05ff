"""The study and the sweep build their steps from one module (trex/pipeline.py): one source of truth for the
held-out levels, whichever figure they are for."""

import pytest

from baseline_agent.ppo_config import eval_levels
from toolkit.cli import UserError
from toolkit.config import build_config, load_yaml
from trex.config import held_out
from trex.study import evaluation_levels, plan, step_configs
from trex.study_layout import StudyConfig
from trex.sweep import SweepConfig, expand


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
