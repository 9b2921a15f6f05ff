"""Step 2 of T-REX: roll step-1 checkpoints out into ranked demonstrations.

    python trex/reward_model.py demos -c configs/trex/coinrun.yaml

Three level sets, disjoint by construction and recorded per demo (its level seed and the range it came from):
- `train`: `num_demos` demos to train on, from `demo_num_levels` distinct levels (`config.demo_levels`);
- `new_episodes`: `num_held_out_demos` new episodes on those same levels, never trained on;
- `held_out`: `num_held_out_demos` demos on the held-out levels (`config.held_out`);
- `val` (with `val_num_levels`): `num_val_demos` demos on validation levels of their own (`config.val_levels`).
With `sweep_demo_levels`, each other number of levels gets its own folder of train and new_episodes demos,
`<demo_dir>/levels_<N>`, beside the held-out demos they share.

Demos are played in rounds. A round gives each slot of one vectorised Procgen env exactly one episode, with env and
sampling seeds derived from (seed, level set, the round's first demo id), and writes its demos and index rows in
one atomic step. A run killed and rerun replays its unfinished round from the same seeds, so the folder ends as
an uninterrupted run leaves it; a rerun with larger counts tops the folder up with new demos.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from baseline_agent.checkpoint import list_checkpoints, load_checkpoint, policy_from_checkpoint
from baseline_agent.envs import NUM_ACTIONS, PROCGEN_OPTIONS, LevelSet, VecEnv, make_procgen
from baseline_agent.models import Policy
from toolkit.cli import UserError
from toolkit.config import config_dict, save_run_config
from toolkit.files import exclusive, write_json
from toolkit.logger import fmt_duration
from trex.config import TrexConfig, demo_levels, held_out, val_levels
from trex.demos.store import DemoRecord, check_game, read_index, write_demos
from trex.level_sets import DEMO_LEVEL_SETS

# Procgen options a demonstrator was trained with; its demos are rolled out with the same ones, except
# use_sequential_levels: a demo is one episode of one level.
ENV_OPTIONS = tuple(k for k in PROCGEN_OPTIONS if k != "use_sequential_levels")


@dataclass
class Demonstrator:
    path: str
    step: int
    policy: Policy
    env_options: dict


@dataclass(frozen=True)
class Source:
    """Who plays one demo: a demonstrator (index) and the epsilon of its epsilon-greedy actions."""

    demonstrator: int
    noise: float = 0.0


@dataclass
class Rollout:
    """A finished demonstration of one round slot, before it gets an id."""

    slot: int
    level_seed: int
    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray


@dataclass(frozen=True)
class Task:
    """One folder's level set to fill: `count` demos on `levels`."""

    folder: Path
    level_set: str
    levels: LevelSet
    count: int


def checkpoint_files(cfg: TrexConfig) -> list[Path]:
    """The checkpoints to roll out: `cfg.checkpoints` if given, else every one in `cfg.checkpoint_dir`."""
    if cfg.checkpoints:
        return [Path(p) for p in cfg.checkpoints]
    if not cfg.checkpoint_dir:
        raise UserError("no checkpoints: set config key 'checkpoint_dir' or 'checkpoints'")
    if not Path(cfg.checkpoint_dir).is_dir():
        raise UserError(f"config key 'checkpoint_dir': {cfg.checkpoint_dir} is not a folder")
    found = list_checkpoints(cfg.checkpoint_dir)
    if not found:
        raise UserError(f"config key 'checkpoint_dir': no step_*.pt checkpoints in {cfg.checkpoint_dir}")
    return found


def load_demonstrators(cfg: TrexConfig, paths: list[Path], device: torch.device) -> list[Demonstrator]:
    """Load checkpoints (sorted by step), refusing any of another game, mode or training levels, or mixed options."""
    out = []
    for path in paths:
        state = load_checkpoint(path)
        spec = state["model_spec"]
        if (spec["env_name"], spec["distribution_mode"]) != (cfg.env_name, cfg.distribution_mode):
            raise UserError(
                f"checkpoint {path} is for {spec['env_name']} ({spec['distribution_mode']}), "
                f"but env_name is {cfg.env_name} ({cfg.distribution_mode})"
            )
        run_cfg = state.get("config") or {}
        trained_on = (run_cfg.get("start_level"), run_cfg.get("num_levels"))
        if None not in trained_on and trained_on != (cfg.train_start_level, cfg.train_num_levels):
            raise UserError(
                f"checkpoint {path} trained on levels {trained_on[0]}+{trained_on[1]}, but "
                f"train_start_level/train_num_levels are {cfg.train_start_level}+{cfg.train_num_levels}:"
                " held-out demos would overlap its training levels"
            )
        options = {k: run_cfg[k] for k in ENV_OPTIONS if k in run_cfg}
        out.append(Demonstrator(str(path), int(state["step"]), policy_from_checkpoint(state, device), options))
    if any(d.env_options != out[0].env_options for d in out):
        raise UserError(
            "the checkpoints were trained with different Procgen options "
            f"({', '.join(ENV_OPTIONS)}); roll them out separately"
        )
    return sorted(out, key=lambda d: d.step)


def demo_sources(cfg: TrexConfig, num_demonstrators: int) -> list[Source]:
    """Every checkpoint without noise, or (D-REX) the newest checkpoint at each noise level."""
    if cfg.noise_levels:
        return [Source(num_demonstrators - 1, float(eps)) for eps in cfg.noise_levels]
    return [Source(k) for k in range(num_demonstrators)]


def plan_sources(have: np.ndarray, target: int, rng: np.random.Generator, stratified: bool) -> list[int]:
    """The source of each new demo, so that the folder holds `target` demos: as evenly spread over the sources as
    possible (stratified: over the checkpoints sorted by step, hence over the whole range of returns the run
    reached, or over the noise levels), or drawn uniformly (the 2020 study's choice). The shares depend on
    `target` and the seed alone, so a run killed and rerun plans the rest of what it planned. Ordered by source:
    the slots of a round then share few checkpoints, and run fewer, larger forward passes."""
    sources = len(have)
    if stratified:
        want = np.full(sources, target // sources)
        want[rng.permutation(sources)[: target % sources]] += 1
    else:
        want = np.bincount(rng.integers(sources, size=target), minlength=sources)
    need = np.maximum(want - have, 0)
    while need.sum() > target - have.sum():  # sources already past their share (an earlier, other plan)
        need[np.argmax(np.where(need > 0, have + need, -1))] -= 1
    return np.repeat(np.arange(sources), need).tolist()


def play_round(
    venv: VecEnv,
    policies: list[Policy],
    jobs: list[Source],
    max_steps: int,
    greedy: bool,
    rng: np.random.Generator,
    device: torch.device,
) -> list[Rollout]:
    """One episode per slot of `venv` (slot i plays jobs[i]), each recorded until it ends or reaches `max_steps`.

    Frame t is the frame action t was chosen on and reward t followed it. A slot whose episode is recorded acts
    at random, unrecorded and without a forward pass, until every slot is done.
    """
    n = venv.num_envs
    demonstrator = np.array([s.demonstrator for s in jobs])
    noise = np.array([s.noise for s in jobs])
    recording = np.ones(n, bool)
    buffers: list[list] = [[] for _ in range(n)]
    done_rollouts: list[Rollout] = []
    seeds = venv.level_seeds()
    obs = venv.observe()
    while recording.any():
        actions = rng.integers(NUM_ACTIONS, size=n)
        explore = rng.random(n) < noise
        for k, policy in enumerate(policies):
            idx = np.flatnonzero(recording & ~explore & (demonstrator == k))
            if len(idx):
                actions[idx] = policy.act(torch.from_numpy(obs[idx]).to(device), greedy=greedy)[0].cpu().numpy()
        new_obs, reward, done, finished = venv.step(actions)
        ended = dict(finished)
        for i in np.flatnonzero(recording):
            buffers[i].append((obs[i].copy(), actions[i], reward[i]))
            if not (done[i] or len(buffers[i]) == max_steps):
                continue
            if done[i] and ended[i].level_seed != seeds[i]:
                raise RuntimeError(f"slot {i}: level seed {seeds[i]} at start, {ended[i].level_seed} at the end")
            frames, acts, rews = zip(*buffers[i], strict=True)
            done_rollouts.append(
                Rollout(int(i), int(seeds[i]), np.stack(frames), np.array(acts, np.int64), np.array(rews, np.float32))
            )
            buffers[i], recording[i] = [], False
        obs = new_obs
    return sorted(done_rollouts, key=lambda r: r.slot)


def demo_summary(records: list[DemoRecord]) -> dict:
    """Counts and return ranges per level set and per (checkpoint, noise), over a whole index."""

    def stats(rets: list[float]) -> dict:
        if not rets:
            return {"count": 0}
        return {
            "count": len(rets),
            "min": float(np.min(rets)),
            "mean": float(np.mean(rets)),
            "max": float(np.max(rets)),
        }

    per_source: dict[tuple, list[DemoRecord]] = {}
    for r in records:
        per_source.setdefault((r.checkpoint, r.checkpoint_step, r.noise), []).append(r)
    return {
        "level_sets": {s: stats([r.ret for r in records if r.level_set == s]) for s in DEMO_LEVEL_SETS},
        "level_ranges": {s: sorted({r.level_range for r in records if r.level_set == s}) for s in DEMO_LEVEL_SETS},
        "checkpoints": [
            {
                "checkpoint": path,
                "step": step,
                "noise": noise,
                **{s: stats([r.ret for r in rs if r.level_set == s]) for s in DEMO_LEVEL_SETS},
            }
            for (path, step, noise), rs in sorted(per_source.items(), key=lambda kv: (kv[0][1], kv[0][2]))
        ],
    }


def tasks(cfg: TrexConfig) -> list[Task]:
    """Every folder and level set to fill: the main folder's (train, new_episodes, test, and val with
    val_num_levels), and train/new_episodes per swept level count."""
    main, test = Path(cfg.demo_dir), held_out(cfg)
    out = [
        Task(main, "train", demo_levels(cfg), cfg.num_demos),
        Task(main, "new_episodes", demo_levels(cfg), cfg.num_held_out_demos),
        Task(main, "held_out", test, cfg.num_held_out_demos),
    ]
    if cfg.val_num_levels:
        out.append(Task(main, "val", val_levels(cfg), cfg.num_val_demos))
    for n in cfg.sweep_demo_levels:
        levels = demo_levels(cfg, n)
        out += [
            Task(main / f"levels_{n}", "train", levels, cfg.num_demos),
            Task(main / f"levels_{n}", "new_episodes", levels, cfg.num_held_out_demos),
        ]
    return out


def demos_are_complete(cfg: TrexConfig) -> bool:
    """Whether every folder of `tasks(cfg)` holds its counts of demos already."""
    todo = tasks(cfg)
    counts = {folder: Counter(r.level_set for r in read_index(folder)) for folder in {t.folder for t in todo}}
    return all(counts[t.folder][t.level_set] >= t.count for t in todo)


def generate_procgen_demonstrations(cfg: TrexConfig) -> list[DemoRecord]:
    """Fill every folder of `tasks(cfg)` up to its counts; return the new demos. Also writes each folder's
    `summary.json` and the resolved `config.yaml`."""
    with exclusive(cfg.demo_dir):
        return _generate(cfg)


def _generate(cfg: TrexConfig) -> list[DemoRecord]:
    todo = tasks(cfg)
    folders = list(dict.fromkeys(t.folder for t in todo))
    for folder in folders:
        check_game(read_index(folder), folder, cfg.env_name, cfg.distribution_mode, "use another demo_dir")
    for t in todo:
        ranges = {r.level_range for r in read_index(t.folder) if r.level_set == t.level_set}
        if ranges - {_range(t.levels)}:
            raise UserError(
                f"{t.folder} holds {t.level_set} demos from levels {', '.join(sorted(ranges))}, not "
                f"{_range(t.levels)}; use another demo_dir"
            )
    device = cfg.setup()
    demonstrators = load_demonstrators(cfg, checkpoint_files(cfg), device)  # sorted by step
    if cfg.noise_levels:
        demonstrators = demonstrators[-1:]  # D-REX: the newest checkpoint, at every noise level
    sources = demo_sources(cfg, len(demonstrators))
    save_run_config(cfg.demo_dir, config_dict(cfg))

    new: list[DemoRecord] = []
    for t in todo:
        new += _fill(cfg, t, demonstrators, sources, device)
    for folder in folders:
        summary = demo_summary(read_index(folder))
        write_json(
            folder / "summary.json",
            {
                "game": cfg.env_name,
                "distribution_mode": cfg.distribution_mode,
                "new_demos": sum(r.file.startswith("demos/") for r in new),
                **summary,
            },
        )
        print(
            f"{folder}: returns "
            + " | ".join(
                f"{s}: min {st['min']:.2f} mean {st['mean']:.2f} max {st['max']:.2f} ({st['count']} demos)"
                if st["count"]
                else f"{s}: no demos"
                for s, st in summary["level_sets"].items()
            ),
            flush=True,
        )
    return new


def _range(levels: LevelSet) -> str:
    return f"{levels.start_level}+{levels.num_levels}"


def _fill(
    cfg: TrexConfig, t: Task, demonstrators: list[Demonstrator], sources: list[Source], device: torch.device
) -> list[DemoRecord]:
    """Play the rounds that bring one folder's level set to its count; each round is written atomically."""
    have = [r for r in read_index(t.folder) if r.level_set == t.level_set]
    if len(have) >= t.count:
        return []
    set_index = DEMO_LEVEL_SETS.index(t.level_set)
    counts = np.array(
        [sum((r.checkpoint, r.noise) == (demonstrators[s.demonstrator].path, s.noise) for r in have) for s in sources]
    )
    stratified = cfg.checkpoint_sampling == "stratified" or bool(cfg.noise_levels)
    plan = plan_sources(counts, t.count, np.random.default_rng([cfg.seed, set_index]), stratified)
    taken = [int(r.id.rsplit("_", 1)[1]) for r in have if r.id.rsplit("_", 1)[-1].isdigit()]
    next_id = max(taken, default=-1) + 1
    print(
        f"{t.folder} {t.level_set}: levels {t.levels}, {len(plan)} demos from "
        f"{len({sources[k].demonstrator for k in plan})} checkpoint(s), rounds of {cfg.num_envs}",
        flush=True,
    )
    written: list[DemoRecord] = []
    t0 = time.time()
    for start in range(0, len(plan), cfg.num_envs):
        jobs = [sources[k] for k in plan[start : start + cfg.num_envs]]
        first_id = next_id + start
        seq = np.random.SeedSequence([cfg.seed, set_index, first_id])  # the round's seeds: its place alone
        env_seed, torch_seed = (int(x) for x in seq.generate_state(2))
        torch.manual_seed(torch_seed)
        venv = VecEnv(
            make_procgen(
                cfg.env_name,
                len(jobs),
                t.levels,
                env_seed,
                cfg.distribution_mode,
                num_threads=1,
                **demonstrators[0].env_options,
            )
        )
        rollouts = play_round(
            venv,
            [d.policy for d in demonstrators],
            jobs,
            cfg.max_episode_steps,
            cfg.greedy,
            np.random.default_rng(seq),
            device,
        )
        batch = []
        for r in rollouts:
            source = jobs[r.slot]
            d = demonstrators[source.demonstrator]
            demo_id = f"{t.level_set}_{first_id + r.slot:06d}"
            record = DemoRecord(
                id=demo_id,
                game=cfg.env_name,
                distribution_mode=cfg.distribution_mode,
                level_seed=r.level_seed,
                level_set=t.level_set,
                level_range=_range(t.levels),
                checkpoint=d.path,
                checkpoint_step=d.step,
                noise=source.noise,
                length=len(r.actions),
                ret=float(r.rewards.sum()),
                file=f"demos/{demo_id}.npz",
            )
            batch.append((record, r.obs, r.actions, r.rewards))
        write_demos(t.folder, batch)
        written += [b[0] for b in batch]
        done = len(have) + start + len(jobs)
        rate = (start + len(jobs)) / max(time.time() - t0, 1e-9)
        print(
            f"{t.level_set} demos {done}/{t.count} | return mean {np.mean([r.ret for r in written]):.2f} | "
            f"eta {fmt_duration((t.count - done) / rate)}",
            flush=True,
        )
    return written
