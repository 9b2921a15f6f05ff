"""Demonstration generation: our vectorised rounds (`play_round`) against one environment per demo, in one run.

    python benchmarks/demo_generation.py --out bench_demos.json
    python benchmarks/demo_generation.py --checkpoint runs/ppo_coinrun/checkpoints/step_0025000000.pt

Both sides play the same number of demos with the same policy and episode cap through the same `play_round`;
the only difference is one round in a vectorised env of num_demos slots (batched inference) versus a loop that
builds a num=1 env per demo, as the 2020 study did. Speed is demo frames (recorded environment steps) per second;
the baseline's env construction is part of its cost and is also reported alone (Procgen's one-time library
load is paid before timing).

torch runs on 1 CPU thread by default: on a 2-core machine shared with other work, torch's default of 2
threads makes batch-1 inference pathologically slow (lock-step threads wait on each other), which would
flatter the vectorised side; --torch_threads 0 shows that case. On CPU the network's forward pass is the
floor of both sides, so the speedup is bounded by batched versus batch-1 forward throughput.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from baseline_agent.checkpoint import load_policy
from baseline_agent.envs import GAMES, NUM_ACTIONS, LevelSet, VecEnv, make_procgen
from baseline_agent.models import Policy
from toolkit.cli import run_main
from toolkit.config import option, parse_config
from toolkit.files import write_json
from toolkit.runtime import resolve_device
from trex.demos.generate import Source, play_round


@dataclass
class BenchConfig:
    """A minute or so on 2 CPUs with the default IMPALA network."""

    env_name: str = option("coinrun", "Procgen game (ignored with --checkpoint: its own game is used)", choices=GAMES)
    checkpoint: str = option("", "a step-1 checkpoint to play ('' = a random default IMPALA policy)")
    channels: list[int] = option([16, 32, 32], "IMPALA channels of the random policy (without --checkpoint)", min=1)
    hidden_size: int = option(256, "IMPALA dense width of the random policy (without --checkpoint)", min=1)
    num_demos: int = option(32, "demos played by each side", min=1)
    max_episode_steps: int = option(200, "cap on a demo's length", min=1)
    num_levels: int = option(200, "training levels the demos are drawn from", min=1)
    device: str = option("cpu", "cpu, cuda or cuda:N (inference device, both sides)")
    torch_threads: int = option(1, "CPU threads for torch (0 = torch's default; see the module docstring)", min=0)
    seed: int = option(0, "random seed", min=0)
    out: str = option("", "write the figures to this JSON file ('' = do not)")


def timed_rollouts(envs, policy: Policy, num_demos: int, bc: BenchConfig, seed: int, device: torch.device) -> dict:
    """Play num_demos demos in the envs `envs()` yields (each gets the demos of its slots); frames per second."""
    frames, wall, cpu, build = 0, -time.perf_counter(), -time.process_time(), 0.0
    rng = np.random.default_rng(seed)
    left = num_demos
    while left:
        t = time.perf_counter()
        venv = envs()
        build += time.perf_counter() - t
        jobs = [Source(0)] * venv.num_envs
        frames += sum(
            len(r.actions) for r in play_round(venv, [policy], jobs, bc.max_episode_steps, False, rng, device)
        )
        left -= len(jobs)
    wall += time.perf_counter()
    cpu += time.process_time()
    return {"demo_frames": frames, "wall_s": wall, "cpu_s": cpu, "env_build_s": build, "sps": frames / wall}


def forward_fps(policy: Policy, batch: int, device: torch.device, seconds: float = 2.0) -> float:
    """The policy's action throughput alone (frames/s) at one batch size: the floor under either side."""
    obs = torch.randint(0, 256, (batch, 64, 64, 3), dtype=torch.uint8, device=device)
    policy.act(obs)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        policy.act(obs)
        calls += 1
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return batch * calls / (time.perf_counter() - start)


def main(argv: list[str]) -> dict:
    bc = parse_config(BenchConfig, argv, "benchmarks/demo_generation.py", __doc__.splitlines()[0])
    if bc.torch_threads:
        torch.set_num_threads(bc.torch_threads)
    if bc.checkpoint:
        policy, meta = load_policy(bc.checkpoint)
        game, net = meta["model_spec"]["env_name"], {k: meta["model_spec"][k] for k in ("channels", "hidden_size")}
    else:
        torch.manual_seed(bc.seed)
        policy = Policy(NUM_ACTIONS, bc.channels, bc.hidden_size).eval()
        game, net = bc.env_name, {"channels": bc.channels, "hidden_size": bc.hidden_size}
    device = resolve_device(bc.device)
    policy = policy.to(device)
    levels = LevelSet(0, bc.num_levels)
    seeds = iter(range(bc.seed, bc.seed + bc.num_demos + 1))

    def one_env() -> VecEnv:
        return VecEnv(make_procgen(game, 1, levels, next(seeds)))

    def one_vec_env() -> VecEnv:
        return VecEnv(make_procgen(game, bc.num_demos, levels, bc.seed))

    make_procgen(game, 1, levels, bc.seed)  # Procgen loads its library once: not part of either side
    torch.manual_seed(bc.seed)
    vec = timed_rollouts(one_vec_env, policy, bc.num_demos, bc, bc.seed, device)
    torch.manual_seed(bc.seed)
    single = timed_rollouts(one_env, policy, bc.num_demos, bc, bc.seed, device)
    floor = {f"batch_{b}": forward_fps(policy, b, device) for b in (1, bc.num_demos)}
    result = {
        "game": game,
        "network": net,
        "num_demos": bc.num_demos,
        "max_episode_steps": bc.max_episode_steps,
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "forward_only_fps": floor,
        "vectorised": vec,
        "one_env_per_demo": single,
        "vectorised_sps": vec["sps"],
        "one_env_per_demo_sps": single["sps"],
        "speedup": vec["sps"] / single["sps"],
    }
    print(f"{'':<18}{'demo frames':>12}{'wall s':>9}{'cpu s':>9}{'env build s':>13}{'frames/s':>10}")
    for name, r in (("vectorised", vec), ("one env per demo", single)):
        print(
            f"{name:<18}{r['demo_frames']:>12,}{r['wall_s']:>9.1f}{r['cpu_s']:>9.1f}{r['env_build_s']:>13.1f}"
            f"{r['sps']:>10,.0f}"
        )
    print(
        f"forward pass alone: {floor['batch_1']:,.0f} frames/s at batch 1, "
        f"{floor[f'batch_{bc.num_demos}']:,.0f} at batch {bc.num_demos}"
    )
    print(
        f"speedup {result['speedup']:.1f}x ({game}, {bc.num_demos} demos, cap {bc.max_episode_steps}, "
        f"net {net['channels']}/{net['hidden_size']}, {device}, {result['torch_threads']} torch threads)"
    )
    if bc.out:
        write_json(bc.out, result)
    return result


if __name__ == "__main__":
    run_main(main)
