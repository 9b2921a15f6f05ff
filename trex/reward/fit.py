"""Step 3 of T-REX: learn a reward from ranked demonstrations, and measure where it generalises.

    python trex/reward_model.py train -c configs/trex/coinrun.yaml   # one reward model
    python trex/reward_model.py sweep -c configs/trex/coinrun.yaml   # correlation vs number of demos and of levels

`train_reward_model` reads top to bottom:
1. `choose_demos`: `num_demos` of the folder's `train` demos (at random, or round-robin over return bins as the
   2020 study did, after dropping those above `max_return`), `val_fraction` of them kept aside for validation;
2. `create_training_data` (trex/reward/pairs.py): snippet pairs labelled by which demo ranks higher;
3. `RewardTrainer.fit` (trex/reward/trainer.py): the `RewardNet` (trex/reward/net.py) under the Bradley-Terry loss
   (trex/reward/loss.py), early stopping on validation accuracy, the best weights kept (with `inverse_dynamics`,
   B-REX's auxiliary loss on the training demos' transitions and on those of `dynamics_demo_dir`'s unlabelled demos:
   trex/reward/auxiliary.py);
4. `evaluate_demos` (trex/reward/evaluation.py): correlations of predicted and true returns, with 95% bootstrap
   intervals, on new episodes of the training demos' levels (`new_episodes`) and on held-out levels (`held_out`),
   beside the episode-length baseline (and on the validation levels, with `val_num_levels`: the figures a recipe
   is chosen by);
5. reward_model.pt, metrics.json, summary.json, train_log.csv, TensorBoard events and plots (trex/reward/plots.py,
   and what the reward responds to: trex/reward/saliency.py) in `run_dir`.
A rerun of a finished run keeps it; a different config on its folder is refused; an interrupted run trains again
from the start, with the same seeds, so its outputs are those of an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import torch

from toolkit.cli import UserError
from toolkit.config import config_dict, diff_configs, load_yaml, save_run_config
from toolkit.files import exclusive, write_json
from toolkit.logger import fmt
from toolkit.tracking import TRACKING_KEYS
from trex.config import TrexConfig, held_out, val_levels
from trex.demos.store import Demo, check_game, load_demos
from trex.level_sets import SCORED_SETS
from trex.results import PairFigures, RewardMetrics, read_metrics, write_metrics
from trex.reward.auxiliary import Transitions, demo_transitions
from trex.reward.evaluation import DemoEvaluation, TrainingProfile, evaluate_demos, predict_rewards
from trex.reward.net import FILE_NAME, RewardNet, load_reward_model, save_reward_model
from trex.reward.pairs import SnippetPairs, concat_obs, create_training_data, label_figures
from trex.reward.plots import plot_cumulative, plot_predicted_vs_true, plot_reward_by_time
from trex.reward.saliency import plot_what_the_reward_sees
from trex.reward.table import figure_columns
from trex.reward.trainer import RewardTrainer

# Keys that cannot change a reward model trained from the same demos.
IRRELEVANT = (
    "device",
    "torch_threads",
    "run_dir",
    "sweep_num_demos",
    "sweep_demo_levels",
    "sweep_seeds",
    "name",
    *TRACKING_KEYS,
)
VAL_PAIRS_MAX = 1000  # validation pairs, as the 2020 study's 1,000
INVERSE_DRAWS = 2000  # validation transitions the inverse-dynamics head is scored on
PICTURE = "what_the_reward_sees.png"


@dataclass
class DemoSets:
    """A folder's demos by level set: to train on, new episodes on the same levels, held-out levels, (with
    val_num_levels) validation levels of their own, and (with dynamics_demo_dir) unlabelled demos of other training
    levels whose transitions feed only the inverse-dynamics loss."""

    train: list[Demo]
    new_episodes: list[Demo]
    held_out: list[Demo]
    val: list[Demo]
    unlabelled: list[Demo]


# --------------------------------------------------------------------------- 1. which demos
def choose_demos(cfg: TrexConfig, demos: list[Demo], rng: np.random.Generator) -> tuple[list[Demo], list[Demo]]:
    """(training demos, validation demos): `num_demos` of `demos` (all of them when there are fewer), of which
    `val_fraction`, spread evenly over their range of returns, validate; none with val_num_levels, whose
    validation demos come from levels of their own."""
    if cfg.num_demos < 2:
        raise UserError(f"config key 'num_demos': {cfg.num_demos} is too few to train on (at least 2)")
    returns = np.array([d.record.ret for d in demos])
    cap = returns.min() + cfg.max_return * (returns.max() - returns.min())
    kept = np.flatnonzero(returns <= cap + 1e-9)
    if cfg.demo_selection == "random":
        pool = rng.permutation(kept)[: cfg.num_demos]
    else:
        pool = np.array(return_bins(returns, kept, cfg.num_demos, cfg.return_bins, rng), np.int64)
    n_val = 0 if cfg.val_num_levels else int(round(cfg.val_fraction * len(pool)))
    by_return = pool[np.argsort(returns[pool], kind="stable")]
    val = set(by_return[((np.arange(n_val) + 0.5) * len(pool) / max(n_val, 1)).astype(int)].tolist())
    return [demos[i] for i in pool if i not in val], [demos[i] for i in pool if i in val]


def return_bins(returns: np.ndarray, candidates: np.ndarray, n: int, bins: int, rng: np.random.Generator) -> list[int]:
    """The 2020 study's choice: `bins` equal-width bins between the lowest and highest return of `candidates`, then
    one random unused demo from each non-empty bin in turn, until `n` are chosen or none is left: a near-uniform
    spread of returns."""
    lo, hi = returns[candidates].min(), returns[candidates].max()
    width = (hi - lo) / bins if hi > lo else 1.0
    which = np.minimum(((returns[candidates] - lo) / width).astype(int), bins - 1)
    left = [list(rng.permutation(candidates[which == b])) for b in range(bins)]
    chosen: list[int] = []
    while len(chosen) < n and any(left):
        for members in left:
            if members and len(chosen) < n:
                chosen.append(int(members.pop()))
    return chosen


# --------------------------------------------------------------------------- one reward model, end to end
def train_reward_model(cfg: TrexConfig) -> RewardMetrics:
    """Train, evaluate and save one reward model in cfg.run_dir; returns the metrics.json content."""
    with exclusive(cfg.run_dir):
        done = finished_run(cfg)
        if done is not None:
            return done
        return fit_and_evaluate(cfg, load_demo_sets(cfg, Path(cfg.demo_dir)), verbose=True)


def load_demo_sets(cfg: TrexConfig, folder: Path, unlabelled: bool = True) -> DemoSets:
    """The training demos of `folder` and its new_episodes demos; the held-out (and validation) demos of the main
    demo folder; with `unlabelled`, the training demos of dynamics_demo_dir, refused where one is of a level a
    model is judged on."""
    main = Path(cfg.demo_dir)
    extra = Path(cfg.dynamics_demo_dir) if cfg.dynamics_demo_dir and unlabelled else None
    sets = DemoSets(
        load_demos(folder, "train"),
        load_demos(folder, "new_episodes"),
        load_demos(main, "held_out"),
        load_demos(main, "val") if cfg.val_num_levels else [],
        load_demos(extra, "train") if extra else [],
    )
    if not sets.train:
        raise UserError(f"no training demos in {folder} (run 'trex/reward_model.py demos' first)")
    if cfg.val_num_levels and not sets.val:
        raise UserError(f"no validation demos in {main} (val_num_levels is set: run 'trex/reward_model.py demos')")
    check_game(
        [d.record for d in sets.train + sets.new_episodes + sets.held_out + sets.val],
        folder,
        cfg.env_name,
        cfg.distribution_mode,
        "set env_name and distribution_mode to match",
    )
    if extra:
        check_unlabelled(cfg, extra, folder, sets.unlabelled)
    return sets


def check_unlabelled(cfg: TrexConfig, extra: Path, folder: Path, demos: list[Demo]) -> None:
    """Refuse, in one line, unlabelled demos that are missing, of another game, the training demos' own folder,
    or of a level in the held-out or validation ranges (their frames would teach the encoder the levels a model
    is judged on)."""
    key = "config key 'dynamics_demo_dir'"
    if not demos:
        raise UserError(f"{key}: no training demos in {extra} (make them with 'trex/reward_model.py demos')")
    if extra.resolve() == folder.resolve():
        raise UserError(f"{key}: {extra} holds the training demos themselves: name a folder of other levels' demos")
    check_game([d.record for d in demos], extra, cfg.env_name, cfg.distribution_mode, "use demos of this game")
    judged = [held_out(cfg), *([val_levels(cfg)] if cfg.val_num_levels else [])]
    shared = sorted({d.record.level_seed for d in demos if any(r.contains(d.record.level_seed) for r in judged)})
    if shared:
        raise UserError(
            f"{key}: {len(shared)} of its levels are validation or held-out levels (e.g. {shared[0]}): "
            "use demos of training levels only"
        )


def scored_demos(demos: DemoSets) -> dict[str, list[Demo]]:
    """The demos of each scored level set, by the set's name."""
    return {name: getattr(demos, key) for key, name in SCORED_SETS.items()}


def draw_picture(cfg: TrexConfig) -> Path:
    """The picture of what the reward model in cfg.run_dir responds to, on its config's demos (saliency.py)."""
    device = cfg.setup()
    net, _ = load_reward_model(Path(cfg.run_dir) / FILE_NAME, device)
    path = Path(cfg.run_dir) / PICTURE
    sets = load_demo_sets(cfg, Path(cfg.demo_dir), unlabelled=False)
    plot_what_the_reward_sees(net, scored_demos(sets), path, device)
    print(f"wrote {path}", flush=True)
    return path


def reward_model_is_trained(cfg: TrexConfig) -> bool:
    """Whether cfg.run_dir holds a reward model trained and evaluated to the end (its metrics.json exists)."""
    return (Path(cfg.run_dir) / "metrics.json").is_file()


def finished_run(cfg: TrexConfig) -> RewardMetrics | None:
    """The metrics of a finished run of this very config in cfg.run_dir; refuse to overwrite a different one."""
    run_dir = Path(cfg.run_dir)
    model = run_dir / FILE_NAME
    if not model.exists():
        return None
    saved_path, metrics_path = run_dir / "config.yaml", run_dir / "metrics.json"
    saved = load_yaml(saved_path) if saved_path.is_file() else None
    differ = ["config.yaml"]
    if isinstance(saved, dict):
        differ = diff_configs(saved, config_dict(cfg), IRRELEVANT, config_dict(TrexConfig()))
    if differ:
        raise UserError(
            f"{model} already exists from a different config (differs in: {', '.join(differ[:5])}); "
            "choose another --run_dir or remove it"
        )
    if not metrics_path.is_file():  # interrupted between saving the model and its evaluation: train it again
        print(f"{cfg.run_dir}: {model.name} has no metrics.json (an interrupted run); training again", flush=True)
        return None
    try:
        load_reward_model(model)
    except UserError as err:  # cut by a crash of the host: the same seeds train it again
        print(f"note: {err}; training it again", flush=True)
        return None
    print(f"{cfg.run_dir}: already trained with this config, keeping {model}", flush=True)
    return read_metrics(metrics_path)


def fit_and_evaluate(cfg: TrexConfig, demos: DemoSets, verbose: bool) -> RewardMetrics:
    """Steps 1-5 of the module docstring for one seed; returns metrics.json's content."""
    run_dir = Path(cfg.run_dir)
    t_start = time.time()
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    device = cfg.setup()
    save_run_config(run_dir, config_dict(cfg))

    # 1-2. demos and snippet pairs
    train_demos, val_demos = choose_demos(cfg, demos.train, rng)
    if cfg.val_num_levels:
        val_demos = demos.val[: cfg.num_val_demos]

    def snippet_pairs(chosen: list[Demo], num_pairs: int, time_aligned: bool) -> SnippetPairs:
        return create_training_data(
            chosen,
            num_pairs,
            cfg.min_snippet_length,
            cfg.max_snippet_length,
            cfg.frame_stride,
            cfg.progress_constraint,
            rng,
            cfg.rank_by,
            time_aligned,
            cfg.same_level_pairs,
        )

    pairs = snippet_pairs(train_demos, cfg.num_pairs, cfg.time_aligned)
    val_pairs = None
    rank = (lambda d: d.record.ret) if cfg.rank_by == "return" else (lambda d: d.record.noise)
    if len({rank(d) for d in val_demos}) >= 2:
        val_pairs = snippet_pairs(
            val_demos, min(cfg.num_pairs, VAL_PAIRS_MAX), cfg.time_aligned or cfg.clock_free_validation
        )
        val_pairs.demo += len(train_demos)  # they index the validation demos, stored after the training ones
    elif verbose:
        print(
            "note: the validation demos do not differ in return, so there is no early stopping "
            "(raise val_fraction or num_demos)",
            flush=True,
        )
    labelled = train_demos + val_demos  # the list both pair sets index; the unlabelled demos come after them
    frames, offsets = concat_obs(labelled + demos.unlabelled)

    # 3. the reward network
    height, width, channels = frames.shape[1:]
    net = RewardNet(cfg.reward_net, cfg.ensemble_size, (height, width, channels), cfg.frame_stack)
    if verbose:
        print(
            f"training a {cfg.reward_net} reward net (x{cfg.ensemble_size}) on {device}: {len(pairs):,} pairs from "
            f"{len(train_demos)} demos, {pairs.frames_per_pair():.0f} frames per pair, label noise "
            f"{pairs.label_noise:.3f}; validation on {len(val_demos)} demos -> {run_dir}",
            flush=True,
        )
    trainer = RewardTrainer(net, cfg, device, run_dir, verbose=verbose)
    dynamics, truth = trainer_inputs(cfg, labelled + demos.unlabelled, offsets, len(train_demos), len(labelled))
    result = trainer.fit(frames, offsets, pairs, val_pairs, rng, dynamics, truth)
    labels = {
        "train": label_figures(pairs, labelled, trainer.accuracy(frames, offsets, pairs)),
        "val": label_figures(val_pairs, labelled, result.best_val_accuracy),
    }
    net.eval()
    inverse = inverse_dynamics_figures(trainer, frames, offsets, labelled, len(train_demos), cfg.seed)
    del frames
    train_rewards = predict_rewards(net, train_demos, device)
    profile = TrainingProfile.of(train_rewards)
    every_frame = np.concatenate(train_rewards)
    reward_stats = {"mean": profile.offset, "std": float(every_frame.std()), "frames": int(len(every_frame))}
    save_reward_model(
        run_dir / FILE_NAME,
        net,
        {
            "env_name": cfg.env_name,
            "distribution_mode": cfg.distribution_mode,
            "best_val_accuracy": result.best_val_accuracy,
            "num_train_demos": len(train_demos),
            "reward_stats": reward_stats,
            "config": config_dict(cfg),
        },
    )

    # 4. evaluation on new episodes of the training levels and on held-out levels
    evaluated = {key: evaluate_demos(net, getattr(demos, key), device, profile, seed=cfg.seed) for key in SCORED_SETS}
    for key in SCORED_SETS:
        scored = snippet_labels(cfg, trainer, getattr(demos, key))
        evaluated[key].figures["snippet_accuracy"] = None if scored is None else scored["model_accuracy"]
        if scored is not None:
            labels[key] = scored
    validation = None  # the validation levels' own figures (val_num_levels), to choose a recipe by
    if cfg.val_num_levels and val_demos:
        validation = evaluate_demos(net, val_demos, device, profile, seed=cfg.seed).figures
        aligned = snippet_labels(cfg, trainer, val_demos, time_aligned=True)
        if aligned is not None:
            labels["val_aligned"] = aligned
    training = dataclasses.asdict(result)
    del training["wall_time_s"]  # the trainer's; the run's own is below
    if inverse is not None:
        training["inverse_dynamics"] = inverse
    metrics = cast(
        RewardMetrics,
        {
            "env_name": cfg.env_name,
            "distribution_mode": cfg.distribution_mode,
            "reward_net": cfg.reward_net,
            "ensemble_size": cfg.ensemble_size,
            "seed": cfg.seed,
            "new_episodes": evaluated["new_episodes"].figures,
            "held_out": evaluated["held_out"].figures,
            "label_noise": pairs.label_noise,
            "val_label_noise": None if val_pairs is None else val_pairs.label_noise,
            "labels": labels,
            **({"validation": validation} if validation is not None else {}),
            **training,
            "num_train_demos": len(train_demos),
            "num_val_demos": len(val_demos),
            "num_pairs": len(pairs),
            "train_demo_returns": [d.record.ret for d in train_demos],
            "reward_stats": reward_stats,
            "frames_per_pair": pairs.frames_per_pair(),
            "wall_time_s": time.time() - t_start,
        },
    )

    # 5. outputs
    write_outputs(run_dir, metrics, demos, evaluated, verbose)
    plot_what_the_reward_sees(net, scored_demos(demos), run_dir / PICTURE, device)
    return metrics


def trainer_inputs(
    cfg: TrexConfig, demos: list[Demo], offsets: np.ndarray, num_train: int, num_labelled: int
) -> tuple[Transitions | None, np.ndarray | None]:
    """What the trainer reads beside the pairs, None where unused: the transitions of the training and the unlabelled
    demos (those past `num_labelled`) for the inverse-dynamics loss, and each frame's true reward, in the order of
    the frames, for the oracle (supervision true_returns): the reward of the step that led to the frame, which the
    frame can show (a kill's explosion), not that of the action chosen on it; 0 for an episode's first frame."""
    moving = [*range(num_train), *range(num_labelled, len(demos))]
    dynamics = demo_transitions(demos, offsets, moving) if cfg.inverse_dynamics > 0 else None
    if cfg.supervision != "true_returns":
        return dynamics, None
    return dynamics, np.concatenate([np.concatenate([[0.0], d.rewards[:-1]]) for d in demos]).astype(np.float32)


def write_outputs(
    run_dir: Path, metrics: RewardMetrics, demos: DemoSets, evaluated: dict[str, DemoEvaluation], verbose: bool
) -> None:
    """Step 5: metrics.json, summary.json and the plots of one reward model (`evaluated`: each scored level set's
    figures and per-frame predicted rewards)."""
    write_metrics(run_dir / "metrics.json", metrics)
    write_json(
        run_dir / "summary.json",
        {
            **figure_columns(metrics),
            "best_val_accuracy": metrics["best_val_accuracy"],
            "label_noise": metrics["label_noise"],
            "wall_time_s": metrics["wall_time_s"],
        },
    )
    sets = {
        SCORED_SETS[key]: (getattr(demos, key), e.rewards, e.figures)
        for key, e in evaluated.items()
        if getattr(demos, key)
    }
    if sets:
        plot_predicted_vs_true(sets, run_dir / "predicted_vs_true.png")
        shown, rewards, _ = sets.get(SCORED_SETS["held_out"], next(iter(sets.values())))
        plot_cumulative(shown, rewards, run_dir / "cumulative_reward.png")
        plot_reward_by_time({k: v[1] for k, v in sets.items()}, run_dir / "reward_by_time.png")
    if verbose:
        t, tr = metrics["held_out"], metrics["new_episodes"]
        print(
            f"done in {metrics['wall_time_s']:.0f}s: spearman {fmt(tr['spearman'], '.3f')} on new training-level "
            f"demos, {fmt(t['spearman'], '.3f')} on held-out levels (length baseline "
            f"{fmt(tr['length_baseline']['spearman'], '.3f')}, {fmt(t['length_baseline']['spearman'], '.3f')}; "
            f"centred {fmt(tr['centred']['spearman'], '.3f')}, {fmt(t['centred']['spearman'], '.3f')}) "
            f"-> {run_dir / 'metrics.json'}",
            flush=True,
        )


def inverse_dynamics_figures(
    trainer: RewardTrainer, frames: np.ndarray, offsets: np.ndarray, labelled: list[Demo], num_train: int, seed: int
) -> dict[str, float] | None:
    """How well the inverse-dynamics head names the action on the validation demos' transitions (levels, or at
    least episodes, it never trained on), beside the share of the most common action there (what always naming it
    would score); None without that loss or validation demos."""
    if trainer.inverse is None or len(labelled) == num_train:
        return None
    held = demo_transitions(labelled, offsets, list(range(num_train, len(labelled))))
    if not len(held.frame):
        return None
    with torch.no_grad():
        draws = min(INVERSE_DRAWS, len(held.frame))
        right = trainer.inverse.loss(trainer.net, frames, held, draws, np.random.default_rng([seed, 4]))[1].item()
    return {"val_acc": right, "most_common_action": float(np.bincount(held.actions).max() / len(held.actions))}


def snippet_labels(
    cfg: TrexConfig, trainer: RewardTrainer, demos: list[Demo], time_aligned: bool = False
) -> PairFigures | None:
    """`label_figures` of `cfg.eval_pairs` equal-length snippet pairs of `demos`, labelled by their demos' true
    returns and drawn without the progress constraint (or `time_aligned`: clock-free), with the model's accuracy on
    them (the snippet accuracy: a figure a constant per-frame reward cannot move). Its own seed, so adding it
    changed no other figure."""
    if not cfg.eval_pairs or len({d.record.ret for d in demos}) < 2:
        return None
    rng = np.random.default_rng([cfg.seed, 2 if time_aligned else 1])
    pairs = create_training_data(
        demos,
        cfg.eval_pairs,
        cfg.min_snippet_length,
        cfg.max_snippet_length,
        cfg.frame_stride,
        False,
        rng,
        time_aligned=time_aligned,
    )
    frames, offsets = concat_obs(demos)
    return label_figures(pairs, demos, trainer.accuracy(frames, offsets, pairs))
