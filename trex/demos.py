"""Step 2 of T-REX: roll step-1 checkpoints out into ranked demonstrations, on training and held-out levels.

    python trex/reward_model.py demos -c configs/trex/coinrun.yaml

All episodes of a level set run at once in ONE vectorised Procgen env; its slots may play different
checkpoints, and each step runs one batched forward pass per checkpoint. Every demo records its level
seed, so training-level demos (`LevelSet(train_start_level, train_num_levels)`) and held-out demos (the
range right after it, `held_out_levels`) are disjoint by construction and checkably so.

Running again on the same `demo_dir` only tops the index up to `num_demos` / `num_test_demos`, with
fresh ids and fresh env and sampling seeds; finished demos are written in small atomic batches, so an
interrupted run keeps what it finished and leaves no half-written file or index row.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from baseline_agent.checkpoint import list_checkpoints, load_checkpoint, policy_from_checkpoint
from baseline_agent.envs import NUM_ACTIONS, PROCGEN_OPTIONS, LevelSet, VecEnv, held_out_levels, make_procgen
from baseline_agent.models import Policy
from toolkit.cli import UserError
from toolkit.config import config_dict, save_run_config
from toolkit.files import exclusive, write_json
from toolkit.logger import fmt_duration
from trex.config import TrexConfig
from trex.demo_store import DemoRecord, check_game, read_index, write_demos

# Procgen options a demonstrator was trained with; its demos are rolled out with the same ones, except
# use_sequential_levels: a demo is one episode of one level.
ENV_OPTIONS = tuple(k for k in PROCGEN_OPTIONS if k != "use_sequential_levels")
FLUSH_EVERY = 8  # finished demos per atomic write (also at least every FLUSH_SECONDS)
FLUSH_SECONDS = 30.0
LEVEL_SETS = ("train", "test")


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
    """A finished demonstration before it gets an id: `job` indexes the jobs given to `roll_out`."""

    job: int
    level_seed: int
    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray


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
    """Load checkpoints (sorted by step), refusing any of another game or mode or mixed Procgen options."""
    out = []
    for path in paths:
        state = load_checkpoint(path)
        spec = state["model_spec"]
        if (spec["env_name"], spec["distribution_mode"]) != (cfg.env_name, cfg.distribution_mode):
            raise UserError(f"checkpoint {path} is for {spec['env_name']} ({spec['distribution_mode']}), "
                            f"but env_name is {cfg.env_name} ({cfg.distribution_mode})")
        run_cfg = state.get("config") or {}
        trained_on = (run_cfg.get("start_level"), run_cfg.get("num_levels"))
        if None not in trained_on and trained_on != (cfg.train_start_level, cfg.train_num_levels):
            raise UserError(f"checkpoint {path} trained on levels {trained_on[0]}+{trained_on[1]}, but "
                            f"train_start_level/train_num_levels are {cfg.train_start_level}+{cfg.train_num_levels}:"
                            " held-out demos would overlap its training levels")
        options = {k: run_cfg[k] for k in ENV_OPTIONS if k in run_cfg}
        out.append(Demonstrator(str(path), int(state["step"]), policy_from_checkpoint(state, device), options))
    if any(d.env_options != out[0].env_options for d in out):
        raise UserError("the checkpoints were trained with different Procgen options "
                        f"({', '.join(ENV_OPTIONS)}); roll them out separately")
    return sorted(out, key=lambda d: d.step)


def demo_sources(cfg: TrexConfig, num_demonstrators: int) -> list[Source]:
    """Every checkpoint without noise, or (D-REX) the newest checkpoint at each noise level."""
    if cfg.noise_levels:
        return [Source(num_demonstrators - 1, float(eps)) for eps in cfg.noise_levels]
    return [Source(k) for k in range(num_demonstrators)]


def choose_sources(sources: list[Source], counts: list[int], n: int, rng: np.random.Generator,
                   stratified: bool) -> list[int]:
    """Pick a source for each of `n` new demos, given how many demos each source already has.

    uniform: independent uniform draws, the 2020 study's choice (returns were binned afterwards).
    stratified: each new demo goes to a source with the fewest demos so far (ties broken at random), so
    demos are spread evenly over all checkpoints sorted by step - from the first to the last, hence
    over the whole range of returns the run reached - or over all noise levels; a top-up, or the rerun of
    an interrupted run, fills the least-used sources first, so the folder ends up evenly spread.
    """
    if not stratified:
        return rng.integers(len(sources), size=n).tolist()
    counts = list(counts)
    picks = []
    for _ in range(n):
        low = min(counts)
        k = int(rng.choice([i for i, c in enumerate(counts) if c == low]))
        counts[k] += 1
        picks.append(k)
    return picks


def roll_out(venv: VecEnv, policies: list[Policy], jobs: list[Source], max_steps: int, greedy: bool,
             rng: np.random.Generator, device: torch.device,
             on_demo: Callable[[Rollout, int], None]) -> int:
    """Play each job as one episode in the slots of `venv`; call `on_demo(rollout, env_steps)`; return env steps.

    A slot takes the next job when its episode starts, so every job yields exactly one episode of its own
    source and checkpoints whose episodes end sooner are not over-represented. Frame t is the frame action t
    was chosen on and reward t followed it. An episode reaching `max_steps` is recorded up to the cap; as
    Procgen cannot reset one slot, the slot then plays out the rest of that episode with random actions,
    unrecorded, and takes the next job when a new episode starts. Slots left without a job also act at
    random (no forward pass).
    """
    n = venv.num_envs
    job_of = np.full(n, -1)  # the job whose episode a slot is recording; -1: idle or playing out a cut episode
    demonstrator = np.array([s.demonstrator for s in jobs])
    noise = np.array([s.noise for s in jobs])
    buffers: list[list] = [[] for _ in range(n)]
    next_job, remaining, steps = 0, len(jobs), 0

    def start(i: int) -> None:
        nonlocal next_job
        if next_job < len(jobs):
            job_of[i] = next_job
            next_job += 1

    for i in range(n):
        start(i)
    seeds = venv.level_seeds()
    obs = venv.observe()
    while remaining:
        active = job_of >= 0
        actions = rng.integers(NUM_ACTIONS, size=n)
        explore = rng.random(n) < np.where(active, noise[job_of], 0.0)
        for k, policy in enumerate(policies):
            idx = np.flatnonzero(active & ~explore & (demonstrator[job_of] == k))
            if len(idx):
                acted = policy.act(torch.from_numpy(obs[idx]).to(device), greedy=greedy)[0]
                actions[idx] = acted.cpu().numpy()
        new_obs, reward, done, finished = venv.step(actions)
        steps += n
        ended = dict(finished)
        for i in np.flatnonzero(active):
            buffers[i].append((obs[i].copy(), actions[i], reward[i]))
            if not (done[i] or len(buffers[i]) == max_steps):
                continue
            if done[i] and ended[i].level_seed != seeds[i]:
                raise RuntimeError(f"slot {i}: level seed {seeds[i]} at start, {ended[i].level_seed} at the end")
            frames, acts, rews = zip(*buffers[i], strict=True)
            buffers[i] = []
            rollout = Rollout(int(job_of[i]), int(seeds[i]), np.stack(frames), np.array(acts, np.int64),
                              np.array(rews, np.float32))
            job_of[i] = -1
            remaining -= 1
            on_demo(rollout, steps)
        if done.any():
            seeds = venv.level_seeds()
            for i in np.flatnonzero(done):
                start(i)
        obs = new_obs
    return steps


class DemoWriter:
    """Gives finished rollouts ids and index rows and writes them in small atomic batches, with progress."""

    def __init__(self, cfg: TrexConfig, level_set: str, jobs: list[Source], demonstrators: list[Demonstrator],
                 first_id: int, done: int, total: int):
        self.cfg, self.level_set, self.jobs, self.demonstrators = cfg, level_set, jobs, demonstrators
        self.next_id, self.done, self.total, self.start_done = first_id, done, total, done
        self.pending: list[tuple] = []
        self.written: list[DemoRecord] = []
        self.t0 = self.last_flush = time.time()

    def __call__(self, r: Rollout, env_steps: int) -> None:
        source = self.jobs[r.job]
        d = self.demonstrators[source.demonstrator]
        demo_id = f"{self.level_set}_{self.next_id:06d}"
        record = DemoRecord(id=demo_id, game=self.cfg.env_name, distribution_mode=self.cfg.distribution_mode,
                            level_seed=r.level_seed, level_set=self.level_set, checkpoint=d.path,
                            checkpoint_step=d.step, noise=source.noise, length=len(r.actions),
                            ret=float(r.rewards.sum()), file=f"demos/{demo_id}.npz")
        self.pending.append((record, r.obs, r.actions, r.rewards))
        self.next_id += 1
        self.done += 1
        if len(self.pending) >= FLUSH_EVERY or time.time() - self.last_flush > FLUSH_SECONDS:
            self.flush(env_steps)

    def flush(self, env_steps: int) -> None:
        if not self.pending:
            return
        write_demos(self.cfg.demo_dir, self.pending)
        self.written += [p[0] for p in self.pending]
        self.pending = []
        self.last_flush = time.time()
        elapsed = self.last_flush - self.t0
        rate = (self.done - self.start_done) / max(elapsed, 1e-9)
        eta = (self.total - self.done) / rate if rate > 0 else math.nan
        rets = [r.ret for r in self.written]
        print(f"{self.level_set} demos {self.done}/{self.total} | env sps {env_steps / max(elapsed, 1e-9):,.0f} | "
              f"return mean {np.mean(rets):.2f} | eta {fmt_duration(eta)}", flush=True)


def _stats(rets: list[float]) -> dict:
    if not rets:
        return {"count": 0}
    return {"count": len(rets), "min": float(np.min(rets)), "mean": float(np.mean(rets)), "max": float(np.max(rets))}


def demo_summary(records: list[DemoRecord]) -> dict:
    """Counts and return ranges per level set and per (checkpoint, noise), over the whole index."""
    per_source: dict[tuple, list[DemoRecord]] = {}
    for r in records:
        per_source.setdefault((r.checkpoint, r.checkpoint_step, r.noise), []).append(r)
    return {
        "level_sets": {s: _stats([r.ret for r in records if r.level_set == s]) for s in LEVEL_SETS},
        "checkpoints": [
            {"checkpoint": path, "step": step, "noise": noise,
             **{s: _stats([r.ret for r in rs if r.level_set == s]) for s in LEVEL_SETS}}
            for (path, step, noise), rs in sorted(per_source.items(), key=lambda kv: (kv[0][1], kv[0][2]))
        ],
    }


def generate_procgen_demonstrations(cfg: TrexConfig) -> list[DemoRecord]:
    """Top `cfg.demo_dir` up to num_demos training-level and num_test_demos held-out demos; return the new ones.

    Checkpoints are chosen per `choose_sources` (stratified by default); with `noise_levels`, the newest
    checkpoint plays at each epsilon (D-REX), demos always spread evenly over the levels, and `noise` is
    recorded, for ranking with `rank_by: noise`. Also writes
    `summary.json` (over all demos in the folder) and the resolved `config.yaml`.
    """
    with exclusive(cfg.demo_dir):
        return _generate(cfg)


def _generate(cfg: TrexConfig) -> list[DemoRecord]:
    demo_dir = Path(cfg.demo_dir)
    existing = read_index(demo_dir)
    check_game(existing, cfg.demo_dir, cfg.env_name, cfg.distribution_mode, "use another demo_dir")
    paths = checkpoint_files(cfg)
    if cfg.noise_levels and not cfg.checkpoints:
        paths = paths[-1:]  # list_checkpoints sorts by step
    device = cfg.setup()
    demonstrators = load_demonstrators(cfg, paths, device)
    if cfg.noise_levels:  # D-REX: one demonstrator, the newest one given
        demonstrators = demonstrators[-1:]
    sources = demo_sources(cfg, len(demonstrators))
    train = LevelSet(cfg.train_start_level, cfg.train_num_levels)
    level_sets = {"train": (train, cfg.num_demos), "test": (held_out_levels(train, cfg.test_num_levels),
                                                            cfg.num_test_demos)}
    save_run_config(demo_dir, config_dict(cfg))

    new: list[DemoRecord] = []
    for set_index, (level_set, (levels, target)) in enumerate(level_sets.items()):
        have = [r for r in existing if r.level_set == level_set]
        need = target - len(have)
        if need <= 0:
            continue
        # Seeds depend on how many demos exist, so a top-up plays new episodes rather than replaying old ones.
        seq = np.random.SeedSequence([cfg.seed, set_index, len(have)])
        env_seed, torch_seed = (int(x) for x in seq.generate_state(2))
        rng = np.random.default_rng(seq)
        torch.manual_seed(torch_seed)
        counts = [sum((r.checkpoint, r.noise) == (demonstrators[s.demonstrator].path, s.noise) for r in have)
                  for s in sources]
        stratified = cfg.checkpoint_sampling == "stratified" or bool(cfg.noise_levels)
        picks = choose_sources(sources, counts, need, rng, stratified)
        # Sorted by checkpoint, the slots running at once share few checkpoints: fewer, larger forward passes.
        # An interrupted run is then short of the later checkpoints; the next run's stratified draw fills them first.
        jobs = sorted((sources[k] for k in picks), key=lambda s: (s.demonstrator, s.noise))
        taken = [int(r.id.rsplit("_", 1)[1]) for r in have if r.id.rsplit("_", 1)[-1].isdigit()]
        venv = VecEnv(make_procgen(cfg.env_name, min(cfg.num_envs, need), levels, env_seed, cfg.distribution_mode,
                                   **demonstrators[0].env_options))
        writer = DemoWriter(cfg, level_set, jobs, demonstrators, max(taken, default=-1) + 1, len(have), target)
        print(f"{level_set} levels [{levels.start_level}, {levels.start_level + levels.num_levels}): "
              f"{need} demos from {len({s.demonstrator for s in jobs})} checkpoint(s) in {venv.num_envs} envs",
              flush=True)
        steps = roll_out(venv, [d.policy for d in demonstrators], jobs, cfg.max_episode_steps, cfg.greedy, rng,
                         device, writer)
        writer.flush(steps)
        new += writer.written

    records = read_index(demo_dir)
    summary = demo_summary(records)
    write_json(demo_dir / "summary.json", {"game": cfg.env_name, "distribution_mode": cfg.distribution_mode,
                                           "new_demos": len(new), **summary})
    print("returns " + " | ".join(
        f"{s}: min {st['min']:.2f} mean {st['mean']:.2f} max {st['max']:.2f} ({st['count']} demos)"
        if st["count"] else f"{s}: no demos" for s, st in summary["level_sets"].items()), flush=True)
    return new

