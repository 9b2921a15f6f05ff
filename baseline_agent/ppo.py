"""PPO as baselines' ppo2 computed it, for Procgen, in PyTorch: read top to bottom in `PPOTrainer.train`.

GAE, clipped surrogate, clipped value loss, per-minibatch advantage normalisation, entropy bonus,
global grad-norm clipping and Adam (eps 1e-5). Step 4 of T-REX reuses this trainer unchanged, with a
`RewardSource` plugged in that replaces the environment reward for learning (true returns stay logged).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch.distributions import Categorical

from baseline_agent.checkpoint import checkpoint_path, list_checkpoints, load_checkpoint, save_checkpoint
from baseline_agent.cli import UserError
from baseline_agent.config import config_dict, diff_configs, load_yaml, option, save_run_config
from baseline_agent.distributed import (
    Dist,
    all_reduce_sum,
    average_gradients,
    broadcast_parameters,
    init_distributed,
    reduce_moments,
    shutdown,
)
from baseline_agent.envs import (
    GAMES,
    NUM_ACTIONS,
    OBS_SHAPE,
    PROCGEN_OPTIONS,
    LevelSet,
    RewardNormalizer,
    VecEnv,
    held_out_levels,
)
from baseline_agent.envs import make_procgen as _make_procgen
from baseline_agent.files import write_json
from baseline_agent.logger import ProgressLine, RunLogger, fmt, fmt_duration, plot_curves
from baseline_agent.models import Policy
from baseline_agent.scores import normalized_score, reference_table

MODES = ("easy", "hard", "extreme", "memory", "exploration")


@dataclass
class PPOConfig:
    """Step 1: PPO on Procgen. Defaults are the Procgen paper's protocol (easy, 200 levels, 25M steps)."""

    env_name: str = option("coinrun", "Procgen game", choices=GAMES)
    distribution_mode: str = option("easy", "Procgen distribution mode", choices=MODES)
    num_levels: int = option(200, "number of training levels (0 = the whole level distribution)", min=0)
    start_level: int = option(0, "first training level seed", min=0)
    eval_num_levels: int = option(100_000, "number of held-out levels, right after the training ones", min=0)
    use_backgrounds: bool = option(True, "Procgen: draw backgrounds")
    restrict_themes: bool = option(False, "Procgen: one theme per game")
    use_monochrome_assets: bool = option(False, "Procgen: monochrome rectangles instead of sprites")
    paint_vel_info: bool = option(False, "Procgen: paint the agent's velocity in the frame")
    center_agent: bool = option(True, "Procgen: centre the view on the agent")
    use_sequential_levels: bool = option(False, "Procgen: go to the next level instead of ending the episode")
    num_threads: int = option(0, "Procgen worker threads per process (0 = this process's share of the cores)",
                              min=0)
    num_envs: int = option(64, "parallel environments per process", min=1)
    env_groups: int = option(1, "split the envs into groups stepped in turn: with 2, one half steps on procgen's "
                             "threads while the other half's actions are inferred (same PPO; each group has its "
                             "own env seed)", min=1)
    num_steps: int = option(256, "steps per environment per update", min=1)
    num_minibatches: int = option(8, "minibatches per epoch", min=1)
    update_epochs: int = option(3, "epochs over each batch", min=1)
    update_chunk_size: int = option(-1, "samples per forward/backward pass within a minibatch, the same gradient "
                                    "in cache-sized pieces (0 = one pass; -1 = auto: 64 on CPU, 256 with bf16, "
                                    "one pass on GPU)",
                                    min=-1)
    learning_rate: float = option(5e-4, "Adam learning rate (constant)", min=0.0)
    gamma: float = option(0.999, "discount of PPO's returns and advantages", min=0.0, max=1.0)
    gae_lambda: float = option(0.95, "GAE lambda", min=0.0, max=1.0)
    ent_coef: float = option(0.01, "entropy bonus coefficient", min=0.0)
    clip_range: float = option(0.2, "PPO clip range, for the policy ratio and the value", min=0.0)
    vf_coef: float = option(0.5, "value loss coefficient", min=0.0)
    max_grad_norm: float = option(0.5, "global gradient-norm clip", min=0.0)
    normalize_reward: bool = option(True, "divide rewards by the running std of the discounted return")
    reward_norm_gamma: float = option(0.99, "discount of the return whose running std scales rewards: 0.99 as the "
                                      "reference's VecNormalize(ob=False) default; set it to gamma to scale by the "
                                      "return PPO optimises", min=0.0, max=1.0)
    channels: list[int] = option([16, 32, 32], "IMPALA CNN channels per stage", min=1)
    hidden_size: int = option(256, "IMPALA CNN dense layer width", min=1)
    total_timesteps: int = option(25_000_000, "environment steps to train for (all processes together)", min=1)
    save_interval: int = option(50, "updates between checkpoints (one is always saved at the end)", min=1)
    eval_interval: int = option(1, "updates between held-out evaluations (0 = never)", min=0)
    log_interval: int = option(1, "updates between progress lines", min=1)
    seed: int = option(0, "random seed (envs, network, sampling)", min=0)
    device: str = option("auto", "auto (cuda when present), cpu, cuda or cuda:N")
    torch_threads: int = option(0, "CPU threads for torch (0 = torch's default)", min=0)
    compile: bool = option(False, "torch.compile the rollout's forward pass (CUDA graphs on a GPU: mode "
                           "reduce-overhead); the update stays eager")
    precision: str = option("fp32", "policy arithmetic: fp32, or bf16 (autocast for the policy's CNN trunk; its "
                            "heads, losses, gradients, Adam and a learned reward stay float32)",
                            choices=("fp32", "bf16"))
    run_dir: str = option("runs/ppo", "folder for config, checkpoints, logs and summary")

    def check(self) -> None:
        if (self.num_envs * self.num_steps) % self.num_minibatches:
            raise UserError(f"config key 'num_minibatches': {self.num_minibatches} does not divide the batch "
                            f"num_envs * num_steps = {self.num_envs * self.num_steps}")
        if self.env_groups > self.num_envs:
            raise UserError(f"config key 'env_groups': {self.env_groups} groups need at least as many envs "
                            f"(num_envs = {self.num_envs})")
        check_device(self.device)


# update_chunk_size=-1 on CPU: a 2,048-sample minibatch ran ~1.6x faster in chunks of 64 than in one pass,
# and in bf16 fastest in chunks of 256 (benchmarks/ppo_throughput.py); a GPU wants the whole minibatch at once.
CPU_CHUNK_SIZE = {"fp32": 64, "bf16": 256}

# Env group g's seed is offset by g times this: far beyond the rank (10,000) and held-out (5,000) offsets.
GROUP_SEED_STRIDE = 1_000_003

# Keys that may change when a run is resumed: they change speed, not the algorithm (bf16 changes rounding only).
RESUMABLE_KEYS = ("total_timesteps", "device", "log_interval", "torch_threads", "num_threads", "update_chunk_size",
                  "env_groups", "precision", "compile")


class RewardSource(Protocol):
    """A learned reward. Alignment: the reward of transition t is `source(obs_t)`, the frame the action
    was chosen on; the same frame T-REX demonstrations pair with reward t. So an episode's last reward
    never sees the next episode's first frame."""

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        """uint8 frames [B, 64, 64, 3] on the training device -> rewards [B] (float), no gradient."""


def compute_gae(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, last_value: torch.Tensor,
                gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns [T, N]; `dones[t]` marks an episode that ended with reward t."""
    advantages = torch.zeros_like(rewards)
    last_gae = torch.zeros_like(last_value)
    for t in reversed(range(rewards.shape[0])):
        next_value = last_value if t == rewards.shape[0] - 1 else values[t + 1]
        nonterminal = 1.0 - dones[t].float()
        delta = rewards[t] + gamma * next_value * nonterminal - values[t]
        last_gae = delta + gamma * lam * nonterminal * last_gae
        advantages[t] = last_gae
    return advantages, advantages + values


def normalize(advantages: torch.Tensor) -> torch.Tensor:
    """ppo2's per-minibatch advantage normalisation."""
    return (advantages - advantages.mean()) / (advantages.std() + 1e-8)


def ppo_loss(logits: torch.Tensor, values: torch.Tensor, actions: torch.Tensor, old_logp: torch.Tensor,
             old_values: torch.Tensor, advantages: torch.Tensor, returns: torch.Tensor, clip_range: float,
             ent_coef: float, vf_coef: float, normalize_advantages: bool = True) -> dict[str, torch.Tensor]:
    """ppo2's loss on one minibatch; advantages are normalised here, per minibatch, as ppo2 did, unless
    the caller already normalised them over the whole minibatch (see `ppo_gradient`)."""
    adv = normalize(advantages) if normalize_advantages else advantages
    dist = Categorical(logits=logits)
    logp = dist.log_prob(actions)
    entropy = dist.entropy().mean()
    values_clipped = old_values + torch.clamp(values - old_values, -clip_range, clip_range)
    vf_loss = 0.5 * torch.max((values - returns) ** 2, (values_clipped - returns) ** 2).mean()
    ratio = torch.exp(logp - old_logp)
    pg_loss = torch.max(-adv * ratio, -adv * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)).mean()
    with torch.no_grad():
        approxkl = 0.5 * ((logp - old_logp) ** 2).mean()
        clipfrac = ((ratio - 1.0).abs() > clip_range).float().mean()
    loss = pg_loss - entropy * ent_coef + vf_loss * vf_coef
    return {"loss": loss, "policy_loss": pg_loss, "value_loss": vf_loss, "policy_entropy": entropy,
            "approxkl": approxkl, "clipfrac": clipfrac}


def ppo_gradient(policy: Policy, mb: dict[str, torch.Tensor], chunk_size: int, clip_range: float,
                 ent_coef: float, vf_coef: float, autocast=contextlib.nullcontext) -> dict[str, torch.Tensor]:
    """Accumulate the gradient of `ppo_loss` on one minibatch into `policy`'s .grad; return the losses.

    With `chunk_size` > 0 the minibatch goes through the network in chunks whose activations stay in cache:
    the same gradient, because every term of the loss is a mean over the minibatch (each chunk's loss weighs
    chunk/minibatch) and the advantages are normalised over the whole minibatch before chunking.
    `autocast()` is the context the forward pass runs in (bf16 autocast, or none).
    """
    n = len(mb["actions"])
    mb = {**mb, "advantages": normalize(mb["advantages"])}
    totals: dict[str, torch.Tensor] = {}
    for start in range(0, n, chunk_size or n):
        c = {k: v[start:start + (chunk_size or n)] for k, v in mb.items()}
        with autocast():
            logits, values = policy(c["obs"])
        losses = ppo_loss(logits, values, c["actions"], c["logps"], c["values"], c["advantages"], c["returns"],
                          clip_range, ent_coef, vf_coef, normalize_advantages=False)
        weight = len(c["actions"]) / n
        (losses["loss"] * weight).backward()
        for k, v in losses.items():
            totals[k] = totals.get(k, 0.0) + v.detach() * weight
    return totals


def check_device(name: str) -> None:
    """Config key 'device' of every entry point: auto, cpu, cuda or cuda:N, else one clear line."""
    if not (name in ("auto", "cpu", "cuda") or name.startswith("cuda:")):
        raise UserError(f"config key 'device': {name!r} is not one of: auto, cpu, cuda, cuda:N")


def resolve_device(name: str, d: Dist) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{d.local_rank}"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("config key 'device': cuda was asked for but no GPU is visible")
    return torch.device(name)


def env_threads() -> int:
    """Procgen threads for num_threads=0: the cores this process may use, shared with the other ranks on the
    node (torchrun's LOCAL_WORLD_SIZE); env stepping and the network take turns, so they need not split them."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def make_env(cfg: PPOConfig, levels: LevelSet, seed: int, num_envs: int, render: bool = False):
    """The Procgen env a PPOConfig describes, on the given level set."""
    return _make_procgen(cfg.env_name, num_envs, levels, seed, cfg.distribution_mode, render=render,
                         num_threads=cfg.num_threads or env_threads(),
                         **{k: getattr(cfg, k) for k in PROCGEN_OPTIONS})


def train_levels(cfg: PPOConfig) -> LevelSet:
    return LevelSet(cfg.start_level, cfg.num_levels)


def eval_levels(cfg: PPOConfig) -> LevelSet:
    """Held-out levels for evaluation; with num_levels=0 there are none, so the full distribution."""
    if cfg.num_levels == 0:
        return LevelSet(0, 0)
    return held_out_levels(train_levels(cfg), cfg.eval_num_levels)


class EpisodeStats:
    """The last 100 finished episodes' true returns, lengths and (with a RewardSource) learned returns."""

    def __init__(self, num_envs: int):
        self.ret, self.len, self.learned = deque(maxlen=100), deque(maxlen=100), deque(maxlen=100)
        self.learned_acc = np.zeros(num_envs, np.float64)

    def add_true(self, episodes) -> None:
        for _, ep in episodes:
            self.ret.append(ep.ret)
            self.len.append(ep.length)

    def add_learned(self, rewards: np.ndarray, dones: np.ndarray, envs: slice = slice(None)) -> None:
        """Accumulate learned rewards [T, n] of the envs `envs` and close the episodes that `dones` [T, n] ends."""
        acc = self.learned_acc[envs]  # a view: updated in place
        for r, d in zip(rewards, dones, strict=True):
            acc += r
            self.learned.extend(acc[d].tolist())
            acc[d] = 0.0


def group_slices(num_envs: int, groups: int) -> list[slice]:
    """Contiguous, nearly equal slices of the env axis, one per env group."""
    bounds = np.linspace(0, num_envs, groups + 1).round().astype(int)
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def step_groups(venvs: list[VecEnv], frames: list[np.ndarray], num_steps: int, choose, landed) -> None:
    """Step every env group `num_steps` times, pipelined: a group's step is started (procgen steps it on its
    own threads) before the next group's actions are chosen, and waited for only when that group is due again.

    `choose(t, g, frames) -> actions` picks group g's actions at step t; `landed(t, g, obs, reward, done,
    finished)` receives the result of that step. `frames[g]` is updated in place to each group's newest
    frames. With one group this is the plain loop: choose, step, wait.
    """
    def land(t: int, g: int) -> None:
        frames[g], reward, done, finished = venvs[g].step_wait()
        landed(t, g, frames[g], reward, done, finished)

    for t in range(num_steps):
        for g, venv in enumerate(venvs):
            if t:
                land(t - 1, g)
            venv.step_async(choose(t, g, frames[g]))
    for g in range(len(venvs)):
        land(num_steps - 1, g)


def _mean(values, d: Dist) -> float | None:
    total, count = all_reduce_sum([float(sum(values)), float(len(values))], d)
    return total / count if count else None


class PPOTrainer:
    """Owns envs, policy, optimizer and logs of one run; `train()` runs (or resumes) it to the end."""

    def __init__(self, cfg: PPOConfig, reward_source: RewardSource | None = None, extra_config: dict | None = None):
        self.cfg, self.reward_source = cfg, reward_source
        use_cuda = cfg.device.startswith("cuda") or (cfg.device == "auto" and torch.cuda.is_available())
        self.dist = init_distributed(use_cuda)
        self.device = resolve_device(cfg.device, self.dist)
        self.run_dir = Path(cfg.run_dir)
        self.batch_size = cfg.num_envs * cfg.num_steps
        self.global_batch = self.batch_size * self.dist.world_size
        auto_chunk = CPU_CHUNK_SIZE[cfg.precision] if self.device.type == "cpu" else 0
        self.chunk_size = auto_chunk if cfg.update_chunk_size < 0 else cfg.update_chunk_size
        self.num_updates = math.ceil(cfg.total_timesteps / self.global_batch)
        self.resolved = {**config_dict(cfg), **(extra_config or {})}
        if cfg.torch_threads:
            torch.set_num_threads(cfg.torch_threads)

        rank_seed = cfg.seed + 10_000 * self.dist.rank
        random.seed(rank_seed)
        np.random.seed(rank_seed)
        torch.manual_seed(cfg.seed)  # same initial network on every rank
        self.policy = Policy(NUM_ACTIONS, cfg.channels, cfg.hidden_size, OBS_SHAPE).to(self.device)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=cfg.learning_rate, eps=1e-5)
        self.compiled = (torch.compile(self.policy, dynamic=False,
                                       mode="reduce-overhead" if self.device.type == "cuda" else "default")
                         if cfg.compile else None)
        self.normalizer = RewardNormalizer(cfg.num_envs, cfg.reward_norm_gamma,
                                           reduce_moments=reduce_moments(self.dist))
        self.step, self.update = 0, 0
        resume_step = self._resume()
        broadcast_parameters(self.policy, self.dist)
        torch.manual_seed(rank_seed + self.step)  # sampling differs across ranks and continues on resume
        self.shuffle_gen = torch.Generator().manual_seed(rank_seed + self.step + 1)

        # Envs restart on resume (Procgen state is not saved); seeds move on with the step count. Env group g
        # (env_groups > 1) has its own procgen env, seeded env_seed + GROUP_SEED_STRIDE * g.
        env_seed = rank_seed + self.step
        self.slices = group_slices(cfg.num_envs, cfg.env_groups)
        self.venvs = self._make_groups(train_levels(cfg), env_seed)
        self.eval_venvs = self._make_groups(eval_levels(cfg), env_seed + 5_000) if cfg.eval_interval else []
        self.stats, self.eval_stats = EpisodeStats(cfg.num_envs), EpisodeStats(cfg.num_envs)
        self.obs = [venv.observe() for venv in self.venvs]
        self.eval_obs = [venv.observe() for venv in self.eval_venvs]
        self.pinned_obs = torch.empty((cfg.num_envs, *OBS_SHAPE), dtype=torch.uint8,
                                      pin_memory=self.device.type == "cuda")
        self.timings = dict.fromkeys(("env", "inference", "update"), 0.0)  # seconds per phase, this update
        self.logger = RunLogger(self.run_dir, resume_step, enabled=self.dist.is_main)
        self.wall_start, self.start_step = time.time(), self.step

    def _make_groups(self, levels: LevelSet, seed: int) -> list[VecEnv]:
        return [VecEnv(make_env(self.cfg, levels, seed + GROUP_SEED_STRIDE * g, sl.stop - sl.start))
                for g, sl in enumerate(self.slices)]

    def autocast(self):
        """The context every forward pass of the policy runs in: bf16 autocast with precision bf16."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.precision == "bf16")

    def act(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The rollout's and evaluation's actions, log-probabilities and values, through the compiled forward
        pass with compile: true (its outputs are copied: CUDA graphs reuse their output memory)."""
        with self.autocast():
            out = self.policy.act(obs, forward=self.compiled)
        return out if self.compiled is None else tuple(x.clone() for x in out)

    # ----------------------------------------------------------------- resume
    def _resume(self) -> int | None:
        """Continue from the newest checkpoint of the same config; refuse a different config."""
        saved_cfg = self.run_dir / "config.yaml"
        if saved_cfg.exists():
            diff = diff_configs(load_yaml(saved_cfg), self.resolved, RESUMABLE_KEYS)
            if diff:
                raise UserError(f"{self.run_dir} holds a run with another config (keys differ: {', '.join(diff)});"
                                f" use a new --run_dir")
        ckpts = list_checkpoints(self.run_dir / "checkpoints")
        if self.dist.is_main:
            save_run_config(self.run_dir, self.resolved)
        if not ckpts:
            return None
        state = load_checkpoint(ckpts[-1], map_location=self.device)
        self.policy.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.normalizer.load_state_dict(state["normalizer"])
        self.step, self.update = state["step"], state["update"]
        torch.set_rng_state(state["rng"]["torch"].cpu())  # map_location may have moved it
        if self.dist.is_main:
            print(f"resuming {self.run_dir} from step {self.step:,} ({ckpts[-1].name})", flush=True)
        return self.step

    def save(self) -> None:
        if not self.dist.is_main:
            return
        cfg = self.cfg
        save_checkpoint(checkpoint_path(self.run_dir, self.step), {
            "model": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "normalizer": self.normalizer.state_dict(),
            "rng": {"torch": torch.get_rng_state()},
            "step": self.step,
            "update": self.update,
            "config": self.resolved,
            "model_spec": {"env_name": cfg.env_name, "distribution_mode": cfg.distribution_mode,
                           "num_actions": NUM_ACTIONS, "channels": list(cfg.channels),
                           "hidden_size": cfg.hidden_size, "obs_shape": list(OBS_SHAPE)},
        })

    # ----------------------------------------------------------------- rollout
    def collect_rollout(self) -> dict[str, torch.Tensor]:
        """num_steps steps of every env with the current policy; rewards are the true ones here."""
        T, N, dev = self.cfg.num_steps, self.cfg.num_envs, self.device
        obs = torch.zeros((T, N, *OBS_SHAPE), dtype=torch.uint8, device=dev)
        actions = torch.zeros((T, N), dtype=torch.long, device=dev)
        logps, values = torch.zeros((T, N), device=dev), torch.zeros((T, N), device=dev)
        rewards, dones = np.zeros((T, N), np.float32), np.zeros((T, N), bool)
        self.policy.eval()
        clock = time.perf_counter()

        def choose(t: int, g: int, frames: np.ndarray) -> np.ndarray:
            nonlocal clock
            start = time.perf_counter()
            self.timings["env"] += start - clock  # waiting for envs, and the bookkeeping since the last choice
            sl = self.slices[g]
            actions[t, sl], logps[t, sl], values[t, sl] = self.act(self.upload(frames, obs[t, sl], sl))
            host_actions = actions[t, sl].cpu().numpy()
            clock = time.perf_counter()
            self.timings["inference"] += clock - start
            return host_actions

        def landed(t: int, g: int, frames, reward, done, finished) -> None:
            rewards[t, self.slices[g]], dones[t, self.slices[g]] = reward, done
            self.stats.add_true(finished)

        step_groups(self.venvs, self.obs, T, choose, landed)
        self.timings["env"] += time.perf_counter() - clock
        last_value = self.act(self.upload(np.concatenate(self.obs), torch.empty_like(obs[0]), slice(0, N)))[2]
        return {"obs": obs, "actions": actions, "logps": logps, "values": values, "rewards": rewards,
                "dones": dones, "last_value": last_value}

    def upload(self, frames: np.ndarray, out: torch.Tensor, envs: slice) -> torch.Tensor:
        """Copy uint8 frames of the envs `envs` into `out` on the device once; on CUDA through their rows of a
        pinned buffer, asynchronously (safe to reuse: a host sync, `.cpu()` or the update's losses, always comes
        before those rows are written again)."""
        src = torch.from_numpy(frames)
        if self.device.type == "cuda":
            src = self.pinned_obs[envs].copy_(src)
        return out.copy_(src, non_blocking=True)

    @torch.no_grad()
    def learned_rewards(self, obs: torch.Tensor) -> np.ndarray:
        """The RewardSource on every frame of a rollout [T, N, ...], in large batches."""
        flat = obs.reshape(-1, *OBS_SHAPE)  # float32 also under precision bf16: see PPOConfig.precision
        out = torch.cat([self.reward_source(chunk).float() for chunk in flat.split(4096)])
        return out.float().reshape(obs.shape[:2]).cpu().numpy()

    def training_rewards(self, batch: dict) -> torch.Tensor:
        """The reward PPO learns from: the true or learned reward, scaled as VecNormalize did, step by step."""
        rewards = batch["rewards"]
        if self.reward_source is not None:
            rewards = self.learned_rewards(batch["obs"])
            self.stats.add_learned(rewards, batch["dones"])
        if self.cfg.normalize_reward:
            rewards = np.stack([self.normalizer(r, d) for r, d in zip(rewards, batch["dones"], strict=True)])
        return torch.from_numpy(rewards).to(self.device)

    # ----------------------------------------------------------------- update
    def update_policy(self, batch: dict, advantages: torch.Tensor, returns: torch.Tensor) -> dict[str, float]:
        cfg = self.cfg
        flat = {"obs": batch["obs"].reshape(-1, *OBS_SHAPE), "actions": batch["actions"].reshape(-1),
                "logps": batch["logps"].reshape(-1), "values": batch["values"].reshape(-1),
                "advantages": advantages.reshape(-1), "returns": returns.reshape(-1)}
        mb_size = self.batch_size // cfg.num_minibatches
        params = list(self.policy.parameters())
        totals: dict[str, torch.Tensor] = {}
        self.policy.train()
        for _ in range(cfg.update_epochs):
            perm = torch.randperm(self.batch_size, generator=self.shuffle_gen).to(self.device)
            for mb in perm.split(mb_size):
                self.optimizer.zero_grad(set_to_none=True)
                losses = ppo_gradient(self.policy, {k: v[mb] for k, v in flat.items()}, self.chunk_size,
                                      cfg.clip_range, cfg.ent_coef, cfg.vf_coef, self.autocast)
                average_gradients(params, self.dist)
                torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                self.optimizer.step()
                for k, v in losses.items():
                    totals[k] = totals.get(k, 0.0) + v
        n = cfg.update_epochs * cfg.num_minibatches
        return {k: float(v) / n for k, v in totals.items()}

    # ----------------------------------------------------------------- held-out evaluation
    def evaluate(self) -> None:
        """num_steps steps on held-out levels with the current policy, as the reference's test worker did."""
        self.policy.eval()
        learned: dict[int, np.ndarray] = {}

        def choose(t: int, g: int, frames: np.ndarray) -> np.ndarray:
            obs = torch.from_numpy(frames).to(self.device)
            if self.reward_source is not None:
                learned[g] = self.learned_rewards(obs[None])
            return self.act(obs)[0].cpu().numpy()

        def landed(t: int, g: int, frames, reward, done, finished) -> None:
            self.eval_stats.add_true(finished)
            if self.reward_source is not None:
                self.eval_stats.add_learned(learned[g], done[None], self.slices[g])

        step_groups(self.eval_venvs, self.eval_obs, self.cfg.num_steps, choose, landed)

    # ----------------------------------------------------------------- the loop
    def train(self) -> dict:
        cfg, d = self.cfg, self.dist
        summary_path = self.run_dir / "summary.json"
        if self.update >= self.num_updates and summary_path.is_file():  # keep the finished run's summary as it is
            if d.is_main:
                print(f"{self.run_dir} is complete at step {self.step:,}; nothing to do", flush=True)
            self.logger.close()
            shutdown(self.dist)
            return json.loads(summary_path.read_text())
        progress = ProgressLine(self.num_updates * self.global_batch, self.step)
        if d.is_main:
            print(f"training {cfg.env_name} ({cfg.distribution_mode}, levels {cfg.start_level}+{cfg.num_levels})"
                  f" on {self.device} x{d.world_size}: {self.num_updates} updates of {self.global_batch:,} "
                  f"steps -> {self.run_dir}", flush=True)
        while self.update < self.num_updates:
            t0 = time.time()
            self.timings = dict.fromkeys(self.timings, 0.0)
            batch = self.collect_rollout()
            rewards = self.training_rewards(batch)
            dones = torch.from_numpy(batch["dones"]).to(self.device)
            advantages, returns = compute_gae(rewards, batch["values"], dones, batch["last_value"],
                                              cfg.gamma, cfg.gae_lambda)
            start = time.perf_counter()
            losses = self.update_policy(batch, advantages, returns)
            self.timings["update"] = time.perf_counter() - start
            self.update += 1
            self.step += self.global_batch
            evaluated = bool(cfg.eval_interval) and self.update % cfg.eval_interval == 0
            if evaluated:
                self.evaluate()
            row = self.log_row(batch, returns, losses, time.time() - t0)
            self.logger.log(row)
            if d.is_main and (self.update % cfg.log_interval == 0 or self.update == self.num_updates):
                shown = {"return": row["eprewmean"], "held-out": row.get("eval_eprewmean")}
                if self.reward_source is not None:
                    shown["learned"] = row["learned_eprewmean"]
                print(progress.line(self.step, shown), flush=True)
            if self.update % cfg.save_interval == 0 or self.update == self.num_updates:
                self.save()
        return self.finish()

    def log_row(self, batch: dict, returns: torch.Tensor, losses: dict, seconds: float) -> dict:
        values = batch["values"].reshape(-1)
        var_ret = returns.reshape(-1).var()
        explained = float("nan") if var_ret == 0 else float(1 - (returns.reshape(-1) - values).var() / var_ret)
        row = {"misc/serial_timesteps": self.update * self.cfg.num_steps, "misc/nupdates": self.update,
               "misc/total_timesteps": self.step, "fps": int(self.global_batch / seconds),
               "misc/explained_variance": explained,
               "eprewmean": _mean(self.stats.ret, self.dist), "eplenmean": _mean(self.stats.len, self.dist),
               "eval_eprewmean": _mean(self.eval_stats.ret, self.dist),
               "eval_eplenmean": _mean(self.eval_stats.len, self.dist),
               "misc/time_elapsed": time.time() - self.wall_start}
        if self.reward_source is not None:
            row["learned_eprewmean"] = _mean(self.stats.learned, self.dist)
            row["eval_learned_eprewmean"] = _mean(self.eval_stats.learned, self.dist)
        row.update({f"loss/{k}": v for k, v in losses.items() if k != "loss"})
        row.update({f"time/{k}": v for k, v in self.timings.items()})
        return row

    def _score(self, ret: float | None) -> float | None:
        return None if ret is None else normalized_score(self.cfg.env_name, self.cfg.distribution_mode, ret)

    def finish(self) -> dict:
        """Write summary.json and the learning-curve PNG; return the summary."""
        cfg = self.cfg
        train_ret, eval_ret = _mean(self.stats.ret, self.dist), _mean(self.eval_stats.ret, self.dist)
        wall = time.time() - self.wall_start
        ref = reference_table().get(cfg.env_name, {})
        summary = {
            "env_name": cfg.env_name, "distribution_mode": cfg.distribution_mode,
            "total_timesteps": self.step, "world_size": self.dist.world_size,
            "train_return": train_ret, "train_episodes": len(self.stats.ret),
            "held_out_return": eval_ret, "held_out_episodes": len(self.eval_stats.ret),
            "train_normalized_score": self._score(train_ret),
            "held_out_normalized_score": self._score(eval_ret),
            "reference_ppo_easy200_25m": {"train": ref.get("ppo_easy200_train_25m"),
                                          "test": ref.get("ppo_easy200_test_25m")},
            "wall_time_s": wall, "sps": (self.step - self.start_step) / max(wall, 1e-9),
        }
        if self.reward_source is not None:
            summary["learned_return"] = _mean(self.stats.learned, self.dist)
            summary["held_out_learned_return"] = _mean(self.eval_stats.learned, self.dist)
        if self.dist.is_main:
            progress_rows = self.run_dir / "progress.csv"
            write_json(self.run_dir / "summary.json", summary)
            columns = {"eprewmean": "train levels (true)", "eval_eprewmean": "held-out levels (true)"}
            if self.reward_source is not None:
                columns.update({"learned_eprewmean": "train levels (learned)",
                                "eval_learned_eprewmean": "held-out levels (learned)"})
            plot_curves(progress_rows, self.run_dir / "learning_curve.png", columns,
                        f"{cfg.env_name} ({cfg.distribution_mode})")
            print(f"done: {self.step:,} steps in {fmt_duration(wall)}; train return {fmt(train_ret)}, "
                  f"held-out return {fmt(eval_ret)} -> {self.run_dir / 'summary.json'}", file=sys.stdout, flush=True)
        self.logger.close()
        shutdown(self.dist)
        return summary
