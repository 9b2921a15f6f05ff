"""PPO throughput: end-to-end SPS of `PPOTrainer` against the floors it cannot beat, in one run on one machine.

    python benchmarks/ppo_throughput.py --out bench.json          # reference sizes: minutes per update on 2 CPUs
    python benchmarks/ppo_throughput.py --num_envs 64 --num_steps 64 --num_minibatches 2 --update_epochs 1

Floors, each per update of num_envs x num_steps and at its best setting: env stepping alone with random actions
(best procgen num_threads), the network's forward pass alone at rollout batch size (no autograd), one PPO update
alone (best update_chunk_size). overhead_ratio = end-to-end seconds per update / the floors' sum; overlap_ratio
divides by max(env, inference) + update instead, the bound if env stepping overlapped inference.

Each speed option is measured on its own and together, end to end, beside the trainer's defaults: the chunked
update against a plain one-pass update, `precision: bf16` (with its own bf16 floors), `env_groups: 2`
(env stepping of one half of the envs overlapping inference of the other), and a learned reward.
Wall and process CPU seconds are both reported: on a machine shared with other work CPU seconds are steadier.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from baseline_agent.envs import GAMES, NUM_ACTIONS, VecEnv
from baseline_agent.ppo import PPOTrainer, ppo_gradient
from baseline_agent.ppo_config import PPOConfig, make_env, train_levels
from toolkit.cli import run_main
from toolkit.config import option, parse_config
from toolkit.files import write_json
from toolkit.runtime import native_bf16


@dataclass
class BenchConfig:
    """Sizes default to the reference protocol; shrink them on a CPU."""

    env_name: str = option("coinrun", "Procgen game", choices=GAMES)
    num_envs: int = option(64, "parallel environments", min=1)
    num_steps: int = option(256, "steps per environment per update", min=1)
    num_minibatches: int = option(8, "minibatches per epoch", min=1)
    update_epochs: int = option(3, "epochs over each batch", min=1)
    channels: list[int] = option([16, 32, 32], "IMPALA CNN channels per stage", min=1)
    hidden_size: int = option(256, "IMPALA CNN dense layer width", min=1)
    update_chunk_size: int = option(-1, "the trainer's update_chunk_size (0 = one pass, -1 = auto)", min=-1)
    chunk_sizes: list[int] = option([0, 32, 64, 128, 256], "update_chunk_size candidates for the update floor", min=0)
    env_threads: list[int] = option([1, 2, 4], "procgen num_threads candidates for the env floor", min=1)
    eval_interval: int = option(
        0,
        "the trainers' held-out evaluation interval (0 = none, as in the floors; 1 = "
        "the reference, which adds num_steps of held-out env steps and inference per update)",
        min=0,
    )
    warmup_updates: int = option(1, "end-to-end updates run before timing", min=0)
    floor_repeats: int = option(2, "times each floor is measured; the fastest counts (a floor is a best case)", min=1)
    updates: int = option(1, "end-to-end updates timed per trainer variant", min=1)
    compare_plain: bool = option(True, "also time the trainer with update_chunk_size 0 (one pass)")
    speed_options: bool = option(True, "also time precision bf16, env_groups 2, and both (with bf16 floors)")
    compile_variants: bool = option(
        False,
        "also time compile: true alone and with bf16 + env_groups 2 (the "
        "compilation itself falls in the warm-up update)",
    )
    learned_reward: bool = option(True, "also time the trainer with a default trex RewardNet, if it exists")
    torch_threads: int = option(0, "CPU threads for torch (0 = torch's default)", min=0)
    device: str = option("cpu", "where the network runs: cpu, cuda or cuda:N")
    seed: int = option(0, "random seed", min=0)
    out: str = option("", "write the figures to this JSON file ('' = do not)")


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class Clock:
    """Wall and process-CPU seconds of a block: `with Clock() as c: ...; c.wall, c.cpu`."""

    def __enter__(self) -> Clock:
        _sync()
        self.wall, self.cpu = -time.perf_counter(), -time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        _sync()
        self.wall += time.perf_counter()
        self.cpu += time.process_time()


class TimedTrainer(PPOTrainer):
    """The trainer unchanged, noting wall and CPU time and the logged row at the end of every update."""

    marks: list[tuple[float, float, dict | None]]

    def log_row(self, *args) -> dict:
        row = super().log_row(*args)
        self.marks.append((time.perf_counter(), time.process_time(), row))
        return row


def ppo_config(bc: BenchConfig, run_dir: str, num_threads: int, **changes) -> PPOConfig:
    cfg = PPOConfig(
        env_name=bc.env_name,
        num_envs=bc.num_envs,
        num_steps=bc.num_steps,
        num_minibatches=bc.num_minibatches,
        update_epochs=bc.update_epochs,
        channels=bc.channels,
        hidden_size=bc.hidden_size,
        update_chunk_size=bc.update_chunk_size,
        eval_interval=bc.eval_interval,
        save_interval=10**6,
        log_interval=10**6,
        num_threads=num_threads,
        seed=bc.seed,
        device=bc.device,
        torch_threads=bc.torch_threads,
        run_dir=run_dir,
        total_timesteps=bc.num_envs * bc.num_steps * (bc.warmup_updates + bc.updates),
    )
    cfg = dataclasses.replace(cfg, **changes)
    cfg.check()
    return cfg


def env_floor(bc: BenchConfig, threads: int) -> Clock:
    """num_steps steps of num_envs envs with random actions, nothing else."""
    cfg = ppo_config(bc, "", threads)
    venv = VecEnv(make_env(cfg, train_levels(cfg), bc.seed, bc.num_envs))
    rng = np.random.default_rng(bc.seed)
    with Clock() as c:
        for _ in range(bc.num_steps):
            venv.step(rng.integers(NUM_ACTIONS, size=bc.num_envs))
    return c


def fastest(measure, repeats: int) -> Clock:
    """The fastest (by wall time) of `repeats` measurements."""
    return min((measure() for _ in range(repeats)), key=lambda c: c.wall)


def inference_floor(trainer: PPOTrainer, batch: dict) -> Clock:
    """The forward pass alone on each step's num_envs frames, without autograd."""
    trainer.policy.eval()
    with torch.inference_mode(), trainer.autocast():
        trainer.policy(batch["obs"][0])  # warm-up: oneDNN builds its kernels per shape on first use
        with Clock() as c:
            for frames in batch["obs"]:
                trainer.policy(frames)
    return c


def minibatch_seconds(trainer: PPOTrainer, batch: dict, chunk: int) -> Clock:
    """One minibatch step (gradient, clip, Adam) at a chunk size, to pick the update floor's chunk."""
    mb_size = trainer.batch_size // trainer.cfg.num_minibatches
    mb = {"obs": batch["obs"].reshape(-1, *batch["obs"].shape[2:])[:mb_size]}
    mb.update({k: batch[k].reshape(-1)[:mb_size] for k in ("actions", "logps", "values")})
    mb["advantages"], mb["returns"] = torch.randn_like(mb["logps"]), torch.randn_like(mb["logps"])
    trainer.policy.train()
    ppo_gradient(
        trainer.policy, {k: v[: chunk or mb_size] for k, v in mb.items()}, chunk, 0.2, 0.01, 0.5, trainer.autocast
    )  # warm-up
    with Clock() as c:
        trainer.optimizer.zero_grad(set_to_none=True)
        ppo_gradient(trainer.policy, mb, chunk, 0.2, 0.01, 0.5, trainer.autocast)
        torch.nn.utils.clip_grad_norm_(list(trainer.policy.parameters()), 0.5)
        trainer.optimizer.step()
    return c


def update_floor(trainer: PPOTrainer, batch: dict, chunk: int) -> Clock:
    """One whole PPO update (all epochs and minibatches) alone, as the trainer runs it."""
    trainer.chunk_size = chunk
    advantages, returns = torch.randn_like(batch["values"]), torch.randn_like(batch["values"])
    with Clock() as c:
        trainer.update_policy(batch, advantages, returns)
    return c


def end_to_end(bc: BenchConfig, root: Path, name: str, threads: int, reward_source=None, **changes) -> dict:
    """Seconds per update of `PPOTrainer.train()` after the warm-up, and its phase shares."""
    trainer = TimedTrainer(ppo_config(bc, str(root / name), threads, **changes), reward_source)
    trainer.marks = [(time.perf_counter(), time.process_time(), None)]
    trainer.train()
    (w0, c0, _), (w1, c1, _) = trainer.marks[bc.warmup_updates], trainer.marks[-1]
    rows = [row for _, _, row in trainer.marks[bc.warmup_updates + 1 :] if row is not None]
    wall, cpu = (w1 - w0) / bc.updates, (c1 - c0) / bc.updates
    phases = {k: sum(r[f"time/{k}"] for r in rows) / bc.updates for k in ("env", "inference", "update")}
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "sps": trainer.batch_size / wall,
        "phases_s": phases,
        "update_chunk_size": trainer.chunk_size,
    }


def env_floors(bc: BenchConfig) -> tuple[dict[int, Clock], int]:
    """The env floor at each env_threads candidate (the fastest of floor_repeats), and the fastest candidate."""
    envs = {n: fastest(lambda n=n: env_floor(bc, n), bc.floor_repeats) for n in bc.env_threads}
    return envs, min(envs, key=lambda n: envs[n].wall)


def network_floors(bc: BenchConfig, floor_trainer: PPOTrainer, batch: dict, precisions: tuple[str, ...]) -> dict:
    """Per precision: the inference floor, one minibatch at each chunk size, and the update floor at the chunk
    whose minibatch took the least CPU time."""
    floors_by_precision: dict[str, Any] = {}
    for precision in precisions:
        floor_trainer.cfg = dataclasses.replace(floor_trainer.cfg, precision=precision)
        inference = fastest(lambda: inference_floor(floor_trainer, batch), bc.floor_repeats)
        minibatch = {c: minibatch_seconds(floor_trainer, batch, c) for c in bc.chunk_sizes}
        best_chunk = min(minibatch, key=lambda c: minibatch[c].cpu)
        update = fastest(lambda c=best_chunk: update_floor(floor_trainer, batch, c), bc.floor_repeats)
        floors_by_precision[precision] = {
            "inference": inference,
            "minibatch": minibatch,
            "chunk": best_chunk,
            "update": update,
        }
    return floors_by_precision


def floors_json(floors: dict) -> dict:
    """One precision's floors as written to the JSON file."""
    inference, update = floors["inference"], floors["update"]
    return {
        "inference": {"wall_s": inference.wall, "cpu_s": inference.cpu},
        "minibatch_by_chunk": {str(c): {"wall_s": m.wall, "cpu_s": m.cpu} for c, m in floors["minibatch"].items()},
        "update": {"chunk": floors["chunk"], "wall_s": update.wall, "cpu_s": update.cpu},
    }


def trainer_variants(bc: BenchConfig, root: Path, threads: int, bf16: bool, device: torch.device) -> dict[str, dict]:
    """End-to-end figures of the trainer's defaults first, then of each speed option asked for, by name."""
    first = end_to_end(bc, root, "default", threads)
    runs = {f"trainer (update_chunk_size {first['update_chunk_size']})": first}
    if bc.compare_plain and first["update_chunk_size"]:
        runs["trainer, plain one-pass update"] = end_to_end(bc, root, "plain", threads, update_chunk_size=0)
    if bc.speed_options:
        runs["trainer, env_groups 2"] = end_to_end(bc, root, "groups", threads, env_groups=2)
        if bf16:
            runs["trainer, precision bf16"] = end_to_end(bc, root, "bf16", threads, precision="bf16")
            runs["trainer, bf16 + env_groups 2"] = end_to_end(
                bc, root, "bf16_groups", threads, precision="bf16", env_groups=2
            )
    if bc.compile_variants:
        runs["trainer, compile"] = end_to_end(bc, root, "compile", threads, compile=True)
        if bf16:
            runs["trainer, bf16 + env_groups 2 + compile"] = end_to_end(
                bc, root, "bf16_groups_compile", threads, precision="bf16", env_groups=2, compile=True
            )
    if bc.learned_reward:
        try:
            from trex.reward.net import RewardNet
        except ImportError:
            print("trex.reward.net.RewardNet not importable: no learned-reward run", flush=True)
        else:
            net = RewardNet().eval().to(device)
            runs["trainer, learned reward (RewardNet)"] = end_to_end(
                bc, root, "learned", threads, reward_source=lambda obs: net(obs)
            )
    return runs


def ratios(run: dict, env_s: Clock, floors: dict) -> dict:
    """A run's seconds per update over the sum of the floors (and over the overlapped bound)."""
    inf_s, upd_s = floors["inference"], floors["update"]
    floor_wall, floor_cpu = env_s.wall + inf_s.wall + upd_s.wall, env_s.cpu + inf_s.cpu + upd_s.cpu
    return {
        "overhead_ratio": run["wall_s"] / floor_wall,
        "overhead_ratio_cpu": run["cpu_s"] / floor_cpu,
        "overlap_ratio": run["wall_s"] / (max(env_s.wall, inf_s.wall) + upd_s.wall),
        "floors_sum_wall_s": floor_wall,
        "floors_sum_cpu_s": floor_cpu,
    }


def headline(res: dict, runs: dict[str, dict], best_threads: int) -> None:
    """The defaults' figures at the top level of `res`, and every run's speedup over them (and the plain update's)."""
    main_run = next(iter(runs.values()))
    res.update(
        {
            "sps": main_run["sps"],
            "env_threads": best_threads,
            **{
                k: main_run[k]
                for k in (
                    "overhead_ratio",
                    "overhead_ratio_cpu",
                    "overlap_ratio",
                    "floors_sum_wall_s",
                    "floors_sum_cpu_s",
                )
            },
        }
    )
    res["speedup_vs_default"] = {name: main_run["wall_s"] / run["wall_s"] for name, run in runs.items()}
    if "trainer, plain one-pass update" in runs:
        plain = runs["trainer, plain one-pass update"]
        res["speedup_vs_plain"] = plain["wall_s"] / main_run["wall_s"]
        res["speedup_vs_plain_cpu"] = plain["cpu_s"] / main_run["cpu_s"]


def print_table(bc: BenchConfig, res: dict, envs: dict[int, Clock], floors_by_precision: dict, runs: dict) -> None:
    """The floors and the runs per update, then the headline figures."""
    batch_size = bc.num_envs * bc.num_steps
    print(f"\n{'per update of ' + format(batch_size, ',') + ' steps':52s} {'wall s':>9s} {'CPU s':>9s} {'SPS':>8s}")
    for n, c in envs.items():
        print(f"{f'floor: env stepping, num_threads {n}':52s} {c.wall:9.2f} {c.cpu:9.2f} {batch_size / c.wall:8.0f}")
    mbs = bc.num_minibatches * bc.update_epochs
    for precision, f in floors_by_precision.items():
        print(
            f"{f'floor: forward pass, no autograd, {precision}':52s} {f['inference'].wall:9.2f} "
            f"{f['inference'].cpu:9.2f}"
        )
        for c, m in f["minibatch"].items():
            print(
                f"{f'  update {precision}, chunk {c}: one minibatch x {mbs}':52s} {m.wall * mbs:9.2f} "
                f"{m.cpu * mbs:9.2f}"
            )
        label = f"floor: one PPO update, {precision}, chunk {f['chunk']}"
        print(f"{label:52s} {f['update'].wall:9.2f} {f['update'].cpu:9.2f}")
    print(
        f"{'sum of floors (fp32)':52s} {res['floors_sum_wall_s']:9.2f} {res['floors_sum_cpu_s']:9.2f} "
        f"{batch_size / res['floors_sum_wall_s']:8.0f}"
    )
    for name, r in runs.items():
        shares = ", ".join(f"{k} {v / r['wall_s']:.0%}" for k, v in r["phases_s"].items())
        print(
            f"{'end-to-end: ' + name:52s} {r['wall_s']:9.2f} {r['cpu_s']:9.2f} {r['sps']:8.0f}   ({shares}; "
            f"overhead {r['overhead_ratio']:.2f}, x{res['speedup_vs_default'][name]:.2f} vs defaults)"
        )
    storage, reference = res["rollout_storage_bytes"], res["rollout_storage_bytes_reference"]
    print(f"rollout storage: {storage / 2**20:.1f} MiB here, {reference / 2**20:.1f} MiB at 64 envs x 256 steps")
    line = (
        f"overhead_ratio {res['overhead_ratio']:.2f} (CPU {res['overhead_ratio_cpu']:.2f}), "
        f"overlap_ratio {res['overlap_ratio']:.2f}"
    )
    if "speedup_vs_plain" in res:
        line += f", speedup vs plain {res['speedup_vs_plain']:.2f}x (CPU {res['speedup_vs_plain_cpu']:.2f}x)"
    print(f"sps {res['sps']:.0f}; {line}; load {res['load_avg_start'][0]:.1f} -> {res['load_avg_end'][0]:.1f}")


def main(argv: list[str]) -> dict:
    bc = parse_config(BenchConfig, argv, prog="benchmarks/ppo_throughput.py", description=__doc__.splitlines()[0])
    if bc.torch_threads:
        torch.set_num_threads(bc.torch_threads)
    batch_size = bc.num_envs * bc.num_steps
    print(
        f"{bc.env_name}: {bc.num_envs} envs x {bc.num_steps} steps, {bc.num_minibatches} minibatches of "
        f"{batch_size // bc.num_minibatches}, {bc.update_epochs} epochs, IMPALA {bc.channels}/{bc.hidden_size}; "
        f"torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    res: dict = {"config": dataclasses.asdict(bc), "load_avg_start": os.getloadavg()}

    envs, best_threads = env_floors(bc)
    res["env_floor"] = {str(n): {"wall_s": c.wall, "cpu_s": c.cpu, "sps": batch_size / c.wall} for n, c in envs.items()}

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        floor_trainer = PPOTrainer(ppo_config(bc, str(root / "floors"), best_threads))
        batch = floor_trainer.collect_rollout()
        res["rollout_storage_bytes"] = sum(v.nbytes for k, v in batch.items() if k != "last_value")
        # the same layout at 64 envs x 256 steps
        res["rollout_storage_bytes_reference"] = 256 * 64 * (64 * 64 * 3 + 8 + 4 + 4 + 4 + 1)
        bf16 = floor_trainer.device.type != "cpu" or native_bf16()
        if not bf16:
            print("bf16 variants skipped: this CPU emulates bf16 (no AVX512-BF16 or AMX), ~10x slower", flush=True)
        precisions = ("fp32", "bf16") if bf16 and (bc.speed_options or bc.compile_variants) else ("fp32",)
        floors_by_precision = network_floors(bc, floor_trainer, batch, precisions)
        for precision, floors in floors_by_precision.items():
            res[f"floors_{precision}"] = floors_json(floors)
        runs = trainer_variants(bc, root, best_threads, bf16, floor_trainer.device)
    res["end_to_end"] = runs
    res["load_avg_end"] = os.getloadavg()

    for name, run in runs.items():
        run.update(ratios(run, envs[best_threads], floors_by_precision["bf16" if "bf16" in name else "fp32"]))
    headline(res, runs, best_threads)
    print_table(bc, res, envs, floors_by_precision, runs)
    if bc.out:
        write_json(bc.out, res)
    return res


if __name__ == "__main__":
    run_main(main)
