"""The config contract: file < command line, strict one-line errors with exit status 2, --help lists keys."""

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from baseline_agent.ppo import PPOConfig
from toolkit.cli import UserError
from toolkit.config import parse_config

ROOT = Path(__file__).resolve().parents[1]


def test_command_line_wins_over_file_over_defaults(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("env_name: starpilot\nnum_envs: 8\nlearning_rate: 1e-3\nchannels: [4, 8, 8]\n")
    cfg = parse_config(PPOConfig, ["-c", str(cfg_file), "--num_envs", "4", "--paint_vel_info", "true"], "t", "t")
    assert (cfg.env_name, cfg.num_envs, cfg.learning_rate, cfg.channels) == ("starpilot", 4, 1e-3, [4, 8, 8])
    assert cfg.paint_vel_info is True
    assert cfg.gamma == 0.999 and cfg.num_steps == 256  # defaults: the reference protocol


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--num_envz", "4"], "unknown config key or argument '--num_envz'"),
        (["--num_envs", "four"], "config key 'num_envs': expected an integer"),
        (["--num_envs", "0"], "config key 'num_envs': 0 is below the minimum 1"),
        (["--env_name", "pong"], "config key 'env_name': 'pong' is not one of"),
        (["--gamma", "1.5"], "config key 'gamma': 1.5 is above the maximum"),
        (["--use_backgrounds", "maybe"], "config key 'use_backgrounds': expected true or false"),
        (["--num_envs", "3", "--num_steps", "3", "--num_minibatches", "2"], "config key 'num_minibatches'"),
    ],
)
def test_bad_values_name_the_key(argv, words):
    with pytest.raises(UserError, match=words.replace("(", r"\(").replace(")", r"\)")):
        parse_config(PPOConfig, argv, "t", "t")


def test_unknown_key_in_file_is_refused(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("env_name: coinrun\nlr: 0.1\n")
    with pytest.raises(UserError, match="unknown config key 'lr'"):
        parse_config(PPOConfig, ["-c", str(cfg_file)], "t", "t")


def run_train(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, str(ROOT / "baseline_agent/train.py"), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def test_cli_error_is_one_line_and_exit_2(tmp_path):
    proc = run_train("--env_name", "pong", "--run_dir", str(tmp_path / "r"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: config key 'env_name'"), proc.stderr
    assert not (tmp_path / "r").exists()
    missing = run_train("-c", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and missing.stderr.startswith("error: cannot read config file")


def key_help_lines(cls: type) -> dict[str, str]:
    """Each key of the config class `cls` as its --help must show it, whitespace aside: the flag, its meaning (the
    key's help text, with its choices) and its default."""
    lines = {}
    for f in dataclasses.fields(cls):
        assert f.metadata["help"].strip(), f"config key {f.name!r} has no help text"
        default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
        choices = f" (choices: {', '.join(map(str, f.metadata['choices']))})" if f.metadata.get("choices") else ""
        line = f"--{f.name} {f.name.upper()} {f.metadata['help']}{choices} [default: {default}]"
        lines[f.name] = "".join(line.split())
    return lines


def test_help_lists_every_key_with_default_and_meaning():
    proc = run_train("--help")
    assert proc.returncode == 0
    text = "".join(proc.stdout.split())  # argparse wraps lines (and words at hyphens) where it likes
    lines = key_help_lines(PPOConfig)
    assert {"env_name", "num_envs", "learning_rate", "total_timesteps", "seed", "device", "run_dir"} <= set(lines)
    for key, line in lines.items():
        assert line in text, key
    assert "[default:0.999]" in text and "[default:25000000]" in text


# Each entry point but train.py (above) and the config class its --help lists: its own module's.
CONFIG_CLASSES = [
    ("trex/train_policy.py", [], "PolicyConfig"),
    ("trex/reward_model.py", ["demos"], "TrexConfig"),
    ("trex/reward_model.py", ["train"], "TrexConfig"),
    ("trex/reward_model.py", ["sweep"], "TrexConfig"),
    ("trex/reward_model.py", ["picture"], "TrexConfig"),
    ("trex/study.py", [], "StudyConfig"),
    ("trex/sweep.py", [], "SweepConfig"),
    ("test_policy.py", [], "EvalConfig"),
    ("rec_video.py", [], "VideoConfig"),
]


@pytest.mark.parametrize("script, verb, cls", CONFIG_CLASSES, ids=[" ".join([s, *v]) for s, v, _ in CONFIG_CLASSES])
def test_help_of_every_entry_point_lists_every_key_of_its_config(script, verb, cls, capsys):
    import runpy

    namespace = runpy.run_path(str(ROOT / script))
    with pytest.raises(SystemExit) as done:
        namespace["main"]([*verb, "--help"])
    assert done.value.code == 0
    text = "".join(capsys.readouterr().out.split())
    for key, line in key_help_lines(namespace[cls]).items():
        assert line in text, key


@pytest.mark.parametrize("script", ["baseline_agent/train.py", "test_policy.py", "rec_video.py"])
def test_every_entry_point_refuses_an_unknown_device_in_one_line(script):
    needed = [] if script == "baseline_agent/train.py" else ["--load_path", "x.pt"]
    proc = subprocess.run(
        [sys.executable, str(ROOT / script), "--device", "gpu", *needed],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: config key 'device': 'gpu' is not one of: auto, cpu, cuda, cuda:N"


def test_every_shipped_config_is_valid():
    from baseline_agent.ppo import PPOConfig
    from toolkit.config import build_config, load_yaml
    from trex.config import TrexConfig
    from trex.pipeline.study_layout import StudyConfig
    from trex.pipeline.study_plan import step_configs
    from trex.pipeline.sweep_plan import SweepConfig, expand

    kinds = {"ppo": PPOConfig, "trex": TrexConfig}
    for path in sorted((ROOT / "configs").rglob("*.yaml")):
        kind = path.parent.name
        if kind in kinds:
            build_config(kinds[kind], load_yaml(path))
        elif kind == "sweep":
            assert expand(build_config(SweepConfig, load_yaml(path)))
        else:  # a study: configs/study/*.yaml and the quickstart
            step_configs(build_config(StudyConfig, load_yaml(path)))


def test_the_study2020_preset_holds_the_2020_studys_values():
    """lzil/procedural-generalization's gen_demos.py, train_reward.py and run_experiments.py."""
    from toolkit.config import build_config, load_yaml
    from trex.config import TrexConfig, demo_levels, held_out

    cfg = build_config(TrexConfig, load_yaml(ROOT / "configs/trex/study2020.yaml"))
    assert (cfg.env_name, cfg.train_num_levels, cfg.demo_num_levels, cfg.checkpoint_sampling) == (
        "starpilot",
        0,
        0,
        "uniform",
    )
    assert held_out(cfg).start_level == 1_000_000_000 and not demo_levels(cfg).overlaps(held_out(cfg))
    assert (cfg.demo_selection, cfg.return_bins, cfg.max_return, cfg.val_fraction) == ("return_bins", 4, 1.0, 0.2)
    assert (cfg.num_pairs, cfg.min_snippet_length, cfg.max_snippet_length, cfg.frame_stride) == (50_000, 20, 99, 1)
    assert (cfg.reward_net, cfg.batch_size, cfg.learning_rate, cfg.weight_decay, cfg.l1_reg) == (
        "study2020",
        1,
        5e-5,
        0.005,
        0.001,
    )
    assert (cfg.epochs, cfg.eval_interval, cfg.patience, cfg.progress_constraint) == (1, 1000, 10, True)
    assert cfg.sweep_num_demos == [12, 25, 50, 100, 200, 300, 1000] and cfg.sweep_seeds == 5


ENTRY_POINTS = [
    ("baseline_agent/train.py", []),
    ("trex/train_policy.py", []),
    ("trex/reward_model.py", []),
    ("trex/reward_model.py", ["demos"]),
    ("trex/reward_model.py", ["train"]),
    ("trex/reward_model.py", ["sweep"]),
    ("trex/reward_model.py", ["picture"]),
    ("trex/study.py", []),
    ("trex/sweep.py", []),
    ("test_policy.py", []),
    ("rec_video.py", []),
]


@pytest.mark.parametrize("script, verb", ENTRY_POINTS, ids=[" ".join([s, *v]) for s, v in ENTRY_POINTS])
def test_help_of_every_entry_point_exits_0_without_a_traceback(script, verb, capsys):
    import runpy

    main = runpy.run_path(str(ROOT / script))["main"]  # the file's own main, as `python FILE` runs it
    with pytest.raises(SystemExit) as done:
        main([*verb, "--help"])
        raise SystemExit(0)  # reward_model.py's own overview returns instead of exiting
    assert done.value.code in (0, None)
    assert "usage:" in capsys.readouterr().out or not verb and script == "trex/reward_model.py"


def test_a_percent_sign_in_any_help_text_is_safe():
    from dataclasses import dataclass

    from toolkit.config import option

    @dataclass
    class Cfg:
        width: float = option(0.95, "95% interval, 100%% sure, %(prog)s untouched")

    with pytest.raises(SystemExit) as done:
        parse_config(Cfg, ["--help"], "prog", "a description: 5% of it")
    assert done.value.code == 0
