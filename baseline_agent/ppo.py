"""PPO as baselines' ppo2 computed it, for Procgen, in PyTorch: read top to bottom in `PPOTrainer.train`.

GAE, clipped surrogate, clipped value loss, per-minibatch advantage normalisation, entropy bonus,
global grad-norm clipping and Adam (eps 1e-5). Step 4 of T-REX reuses this trainer unchanged, with a
`RewardSource` plugged in that replaces the environment reward for learning (true returns stay logged).
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch.distributions import Categorical

from baseline_agent.checkpoint import (
    checkpoint_path,
    load_checkpoint,
    load_resume_state,
    resume_point,
    save_checkpoint,
)
from baseline_agent.distributed import (
    Dist,
    all_reduce_sum,
    average_gradients,
    broadcast_parameters,
    gather_to_main,
    init_distributed,
    reduce_moments,
    shutdown,
)
from baseline_agent.envs import (
    NUM_ACTIONS,
    OBS_SHAPE,
    EpisodeStats,
    RewardNormalizer,
    group_slices,
    step_groups,
)
from baseline_agent.models import NonFinite, Policy
from baseline_agent.ppo_config import (
    CPU_CHUNK_SIZE,
    RESUMABLE_KEYS,
    PPOConfig,
    eval_levels,
    make_env_groups,
    model_spec,
    train_levels,
)
from baseline_agent.ppo_logs import explained_variance, progress_row, run_summary, write_summary
from toolkit.cli import UserError
from toolkit.config import config_dict, save_run_config
from toolkit.logger import ProgressLine, RunLogger
from toolkit.runtime import check_precision, wants_cuda
from toolkit.tracking import Tracker, start_tracking


class RewardSource(Protocol):
    """A learned reward. Alignment: the reward of transition t is `source(obs_t)`, the frame the action
    was chosen on; the same frame T-REX demonstrations pair with reward t. So an episode's last reward
    never sees the next episode's first frame."""

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        """uint8 frames [B, 64, 64, 3] on the training device -> rewards [B] (float), no gradient."""


def compute_gae(
    rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, last_value: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
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


def ppo_loss(
    logits: torch.Tensor,
    values: torch.Tensor,
    actions: torch.Tensor,
    old_logp: torch.Tensor,
    old_values: torch.Tensor,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    clip_range: float,
    ent_coef: float,
    vf_coef: float,
    normalize_advantages: bool = True,
) -> dict[str, torch.Tensor]:
    """ppo2's loss on one minibatch; advantages are normalised here, per minibatch, as ppo2 did, unless
    the caller already normalised them over the whole minibatch (see `ppo_gradient`)."""
    adv = normalize(advantages) if normalize_advantages else advantages
    dist = Categorical(logits=logits, validate_args=False)  # non-finite logits give a NaN loss: `check_finite`
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
    return {
        "loss": loss,
        "policy_loss": pg_loss,
        "value_loss": vf_loss,
        "policy_entropy": entropy,
        "approxkl": approxkl,
        "clipfrac": clipfrac,
    }


def ppo_gradient(
    policy: Policy,
    mb: dict[str, torch.Tensor],
    chunk_size: int,
    clip_range: float,
    ent_coef: float,
    vf_coef: float,
    autocast=contextlib.nullcontext,
) -> dict[str, torch.Tensor]:
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
        c = {k: v[start : start + (chunk_size or n)] for k, v in mb.items()}
        with autocast():
            logits, values = policy(c["obs"])
        losses = ppo_loss(
            logits,
            values,
            c["actions"],
            c["logps"],
            c["values"],
            c["advantages"],
            c["returns"],
            clip_range,
            ent_coef,
            vf_coef,
            normalize_advantages=False,
        )
        weight = len(c["actions"]) / n
        (losses["loss"] * weight).backward()
        for k, v in losses.items():
            totals[k] = totals.get(k, 0.0) + v.detach() * weight
    return totals


def check_finite(losses: dict[str, torch.Tensor], grad_norm: torch.Tensor, update: int, learning_rate: float) -> None:
    """Stop at the first non-finite loss or gradient, before the optimizer applies it: the weights (and so every
    checkpoint) stay finite and the newest checkpoint is the last good one. One sync per minibatch."""
    if bool(torch.isfinite(losses["loss"]) & torch.isfinite(grad_norm)):
        return
    shown = ", ".join(f"{k} {float(losses[k]):.4g}" for k in ("loss", "policy_loss", "value_loss", "policy_entropy"))
    raise diverged(update, learning_rate, f"{shown}, gradient norm {float(grad_norm):.4g}")


def diverged(update: int, learning_rate: float, what: str) -> UserError:
    return UserError(
        f"PPO diverged at update {update}: {what}; the likely cause is a learning rate too high (learning_rate "
        f"{learning_rate:g}) or rewards of extreme size; no checkpoint holds it (the newest is the last good "
        "one): lower learning_rate in a new --run_dir"
    )


def _mean(values, d: Dist) -> float | None:
    total, count = all_reduce_sum([float(sum(values)), float(len(values))], d)
    return total / count if count else None


class PPOTrainer:
    """Owns envs, policy, optimizer and logs of one run; `train()` runs (or resumes) it to the end."""

    def __init__(self, cfg: PPOConfig, reward_source: RewardSource | None = None, extra_config: dict | None = None):
        self.cfg, self.reward_source = cfg, reward_source
        self.dist = init_distributed(wants_cuda(cfg.device))
        self.device = cfg.setup(self.dist.local_rank)
        check_precision(cfg.precision, self.device)
        self.run_dir = Path(cfg.run_dir)
        self.batch_size = cfg.num_envs * cfg.num_steps
        self.global_batch = self.batch_size * self.dist.world_size
        auto_chunk = CPU_CHUNK_SIZE[cfg.precision] if self.device.type == "cpu" else 0
        self.chunk_size = auto_chunk if cfg.update_chunk_size < 0 else cfg.update_chunk_size
        self.num_updates = math.ceil(cfg.total_timesteps / self.global_batch)
        self.resolved = {**config_dict(cfg), **(extra_config or {})}

        self.rank_seed = cfg.seed + 10_000 * self.dist.rank
        random.seed(self.rank_seed)
        np.random.seed(self.rank_seed)
        torch.manual_seed(cfg.seed)  # same initial network on every rank
        self.policy = Policy(NUM_ACTIONS, cfg.channels, cfg.hidden_size, OBS_SHAPE).to(self.device)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=cfg.learning_rate, eps=1e-5)
        self.compiled = (
            torch.compile(
                self.policy, dynamic=False, mode="reduce-overhead" if self.device.type == "cuda" else "default"
            )
            if cfg.compile
            else None
        )
        self.normalizer = RewardNormalizer(
            cfg.num_envs, cfg.reward_norm_gamma, reduce_moments=reduce_moments(self.dist)
        )
        self.shuffle_gen = torch.Generator()
        self.slices = group_slices(cfg.num_envs, cfg.env_groups)
        self.stats, self.eval_stats = EpisodeStats(cfg.num_envs), EpisodeStats(cfg.num_envs)
        self.step, self.update, self.resumed = 0, 0, False
        exact = self._resume()
        broadcast_parameters(self.policy, self.dist)
        self._start_envs(exact)
        self.pinned_obs = torch.empty(
            (cfg.num_envs, *OBS_SHAPE), dtype=torch.uint8, pin_memory=self.device.type == "cuda"
        )
        self.timings = dict.fromkeys(("env", "inference", "update"), 0.0)  # seconds per phase, this update
        tracker = start_tracking(cfg, self.run_dir, self.resolved, "ppo") if self.dist.is_main else Tracker()
        self.logger = RunLogger(self.run_dir, self.step if self.resumed else None, self.dist.is_main, tracker)
        self.wall_start, self.start_step = time.time(), self.step

    def autocast(self):
        """The context every forward pass of the policy runs in: bf16 autocast with precision bf16."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.precision == "bf16")

    def act(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The rollout's and evaluation's actions, log-probabilities and values, through the compiled forward
        pass with compile: true (its outputs are copied: CUDA graphs reuse their output memory)."""
        try:
            with self.autocast():
                out = self.policy.act(obs, forward=self.compiled)
        except NonFinite as err:
            raise diverged(self.update + 1, self.cfg.learning_rate, str(err)) from None
        if self.compiled is None:
            return out
        actions, logps, values = out
        return actions.clone(), logps.clone(), values.clone()

    # ----------------------------------------------------------------- checkpoints and resume
    def _layout(self) -> dict:
        """What an exact resume needs to match: the envs' shape across processes."""
        return {
            "world_size": self.dist.world_size,
            "num_envs": self.cfg.num_envs,
            "env_groups": self.cfg.env_groups,
            "eval": bool(self.cfg.eval_interval),
        }

    def _resume(self) -> dict | None:
        """Continue from the newest checkpoint of the same config (a different config is refused); return this
        process's part of its exact-resume sidecar when it has one for the same env layout, else None."""
        path = resume_point(self.run_dir, self.resolved, RESUMABLE_KEYS)
        if self.dist.is_main:
            save_run_config(self.run_dir, self.resolved)
        if path is None:
            return None
        state = load_checkpoint(path, map_location=self.device)
        self.policy.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.normalizer.load_state_dict(state["normalizer"])
        self.step, self.update, self.resumed = state["step"], state["update"], True
        sidecar = load_resume_state(path, self.step)
        exact = sidecar["ranks"][self.dist.rank] if sidecar and sidecar["layout"] == self._layout() else None
        if self.dist.is_main:
            note = (
                ""
                if exact
                else (
                    "; its envs restart (no saved env state for this layout), so from here the run "
                    "differs from an uninterrupted one"
                )
            )
            print(f"resuming {self.run_dir} from step {self.step:,} ({path.name}){note}", flush=True)
        return exact

    def _start_envs(self, exact: dict | None) -> None:
        """Training and held-out envs, and the sampling generators: restored exactly from `exact`, or new (seeds
        move on with the step count, so restarted envs do not replay the run's start)."""
        cfg = self.cfg
        seed = self.rank_seed + (self.step if exact is None else 0)
        self.venvs = make_env_groups(cfg, self.slices, train_levels(cfg), seed)
        self.eval_venvs = make_env_groups(cfg, self.slices, eval_levels(cfg), seed + 5_000) if cfg.eval_interval else []
        if exact is None:
            torch.manual_seed(self.rank_seed + self.step)  # sampling differs across ranks
            self.shuffle_gen.manual_seed(self.rank_seed + self.step + 1)
        else:
            for venv, state in zip(self.venvs + self.eval_venvs, exact["envs"] + exact["eval_envs"], strict=True):
                venv.set_state(state)
            self.stats.load_state_dict(exact["stats"])
            self.eval_stats.load_state_dict(exact["eval_stats"])
            self.normalizer.ret = exact["normalizer_ret"].numpy().copy()
            torch.set_rng_state(exact["torch_rng"])
            if "cuda_rng" in exact and self.device.type == "cuda":
                torch.cuda.set_rng_state(exact["cuda_rng"], self.device)
            self.shuffle_gen.set_state(exact["shuffle_rng"])
        self.obs = [venv.observe() for venv in self.venvs]
        self.eval_obs = [venv.observe() for venv in self.eval_venvs]

    def save(self) -> None:
        """A checkpoint (written by rank 0) and its exact-resume sidecar, with every process's part gathered."""
        mine = {
            "torch_rng": torch.get_rng_state(),
            "shuffle_rng": self.shuffle_gen.get_state(),
            "normalizer_ret": torch.from_numpy(self.normalizer.ret.copy()),
            "envs": [v.get_state() for v in self.venvs],
            "eval_envs": [v.get_state() for v in self.eval_venvs],
            "stats": self.stats.state_dict(),
            "eval_stats": self.eval_stats.state_dict(),
        }
        if self.device.type == "cuda":
            mine["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        ranks = gather_to_main(mine, self.dist)
        if not self.dist.is_main:
            return
        cfg = self.cfg
        save_checkpoint(
            checkpoint_path(self.run_dir, self.step),
            {
                "model": self.policy.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "normalizer": self.normalizer.state_dict(),
                "step": self.step,
                "update": self.update,
                "config": self.resolved,
                "model_spec": model_spec(cfg),
            },
            resume={"layout": self._layout(), "ranks": ranks},
        )

    # ----------------------------------------------------------------- rollout
    def collect_rollout(self) -> dict[str, Any]:
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
        return {
            "obs": obs,
            "actions": actions,
            "logps": logps,
            "values": values,
            "rewards": rewards,
            "dones": dones,
            "last_value": last_value,
        }

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
        assert self.reward_source is not None, "learned_rewards needs a reward source"
        reward_source = self.reward_source
        flat = obs.reshape(-1, *OBS_SHAPE)  # float32 also under precision bf16: see PPOConfig.precision
        out = torch.cat([reward_source(chunk).float() for chunk in flat.split(4096)])
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
        flat = {
            "obs": batch["obs"].reshape(-1, *OBS_SHAPE),
            "actions": batch["actions"].reshape(-1),
            "logps": batch["logps"].reshape(-1),
            "values": batch["values"].reshape(-1),
            "advantages": advantages.reshape(-1),
            "returns": returns.reshape(-1),
        }
        mb_size = self.batch_size // cfg.num_minibatches
        params = list(self.policy.parameters())
        totals: dict[str, torch.Tensor] = {}
        self.policy.train()
        for _ in range(cfg.update_epochs):
            perm = torch.randperm(self.batch_size, generator=self.shuffle_gen).to(self.device)
            for mb in perm.split(mb_size):
                self.optimizer.zero_grad(set_to_none=True)
                losses = ppo_gradient(
                    self.policy,
                    {k: v[mb] for k, v in flat.items()},
                    self.chunk_size,
                    cfg.clip_range,
                    cfg.ent_coef,
                    cfg.vf_coef,
                    self.autocast,
                )
                average_gradients(params, self.dist)
                grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                check_finite(losses, grad_norm, self.update + 1, cfg.learning_rate)
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
            print(
                f"training {cfg.env_name} ({cfg.distribution_mode}, levels {cfg.start_level}+{cfg.num_levels})"
                f" on {self.device} x{d.world_size}: {self.num_updates} updates of {self.global_batch:,} "
                f"steps -> {self.run_dir}",
                flush=True,
            )
        while self.update < self.num_updates:
            t0 = time.time()
            self.timings = dict.fromkeys(self.timings, 0.0)
            batch = self.collect_rollout()
            rewards = self.training_rewards(batch)
            dones = torch.from_numpy(batch["dones"]).to(self.device)
            advantages, returns = compute_gae(
                rewards, batch["values"], dones, batch["last_value"], cfg.gamma, cfg.gae_lambda
            )
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
        means = self.episode_means()
        explained = explained_variance(batch["values"].reshape(-1), returns.reshape(-1))
        return progress_row(
            self.update,
            self.step,
            self.cfg.num_steps,
            int(self.global_batch / seconds),
            explained,
            means,
            losses,
            self.timings,
            time.time() - self.wall_start,
        )

    def episode_means(self) -> dict[str, float | None]:
        """Mean return and length of the last 100 episodes on each level set, over every process."""
        d = self.dist
        means = {
            "eprewmean": _mean(self.stats.ret, d),
            "eplenmean": _mean(self.stats.len, d),
            "eval_eprewmean": _mean(self.eval_stats.ret, d),
            "eval_eplenmean": _mean(self.eval_stats.len, d),
        }
        if self.reward_source is not None:
            means["learned_eprewmean"] = _mean(self.stats.learned, d)
            means["eval_learned_eprewmean"] = _mean(self.eval_stats.learned, d)
        return means

    def finish(self) -> dict:
        """Write summary.json and the learning-curve PNG; return the summary."""
        wall = time.time() - self.wall_start
        episodes = {"train": len(self.stats.ret), "held_out": len(self.eval_stats.ret)}
        summary = run_summary(
            self.cfg.env_name,
            self.cfg.distribution_mode,
            self.step,
            self.dist.world_size,
            self.episode_means(),
            episodes,
            wall,
            (self.step - self.start_step) / max(wall, 1e-9),
        )
        if self.dist.is_main:
            write_summary(self.run_dir, summary)
            self.logger.tracker.log_files([self.run_dir / "learning_curve.png"])
        self.logger.close()
        shutdown(self.dist)
        return summary
