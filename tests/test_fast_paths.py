"""The speed options of PPO keep what it computes: pipelined env groups (`env_groups`), bf16 autocast and the
compiled rollout. TEST_DEVICE=cuda runs the trainer tests on a GPU (benchmarks/gpu_check.sh does)."""

import os

import numpy as np
import pytest
import torch

from baseline_agent.envs import NUM_ACTIONS, group_slices, step_groups
from baseline_agent.models import Policy
from baseline_agent.ppo import PPOTrainer, ppo_gradient
from baseline_agent.ppo_config import PPOConfig, make_env_groups, train_levels


class RecordingEnv:
    """A stand-in VecEnv that notes the order of calls; its frame is the number of steps taken."""

    def __init__(self, name: str, log: list):
        self.name, self.log, self.steps = name, log, 0

    def step_async(self, actions):
        self.log.append(("start", self.name, int(actions[0])))

    def step_wait(self):
        self.steps += 1
        self.log.append(("wait", self.name))
        return np.full(1, self.steps), np.zeros(1, np.float32), np.zeros(1, bool), []


def test_step_groups_starts_each_group_before_choosing_for_the_next():
    log: list = []
    venvs = [RecordingEnv("a", log), RecordingEnv("b", log)]
    frames = [np.zeros(1), np.zeros(1)]
    landed = []

    def choose(t, g, f):
        log.append(("choose", "ab"[g], int(f[0])))
        return np.array([10 * t + g])

    step_groups(venvs, frames, 2, choose, lambda t, g, obs, *_: landed.append((t, g, int(obs[0]))))
    assert log == [
        ("choose", "a", 0),
        ("start", "a", 0),
        ("choose", "b", 0),
        ("start", "b", 1),
        ("wait", "a"),
        ("choose", "a", 1),
        ("start", "a", 10),
        ("wait", "b"),
        ("choose", "b", 1),
        ("start", "b", 11),
        ("wait", "a"),
        ("wait", "b"),
    ]
    assert landed == [(0, 0, 1), (0, 1, 1), (1, 0, 2), (1, 1, 2)]
    assert [int(f[0]) for f in frames] == [2, 2]


def test_group_slices_cover_the_envs_once():
    for n, g in [(64, 1), (64, 2), (7, 3), (5, 5)]:
        slices = group_slices(n, g)
        assert len(slices) == g and slices[0].start == 0 and slices[-1].stop == n
        assert all(a.stop == b.start and a.stop > a.start for a, b in zip(slices, slices[1:], strict=False))


DEVICE = os.environ.get("TEST_DEVICE", "cpu")


def _trainer(tmp_path, **changes) -> PPOTrainer:
    # leaper: an untrained policy ends episodes within these 48 steps, so the replay below crosses resets.
    values = {
        "env_name": "leaper",
        "num_levels": 5,
        "num_envs": 5,
        "num_steps": 48,
        "num_minibatches": 1,
        "channels": [4, 8, 8],
        "hidden_size": 32,
        "eval_interval": 0,
        "num_threads": 1,
        "total_timesteps": 240,
        "device": DEVICE,
        "run_dir": str(tmp_path / "run"),
    }
    cfg = PPOConfig(**{**values, **changes})
    cfg.check()
    return PPOTrainer(cfg)


def test_pipelined_rollout_is_the_envs_own_trajectory(tmp_path):
    """With 3 env groups, every stored frame, reward and done is what replaying the stored actions on fresh
    envs of the same seeds gives, and the stored log-probs and values are the policy's on the stored frames."""
    trainer = _trainer(tmp_path, env_groups=3)
    batch = trainer.collect_rollout()
    replay = make_env_groups(trainer.cfg, trainer.slices, train_levels(trainer.cfg), trainer.cfg.seed)
    for venv, sl in zip(replay, trainer.slices, strict=True):
        frames = venv.observe()
        for t in range(trainer.cfg.num_steps):
            np.testing.assert_array_equal(batch["obs"][t, sl].cpu().numpy(), frames)
            frames, reward, done, _ = venv.step(batch["actions"][t, sl].cpu().numpy())
            np.testing.assert_array_equal(batch["rewards"][t, sl], reward)
            np.testing.assert_array_equal(batch["dones"][t, sl], done)
        np.testing.assert_array_equal(trainer.obs[trainer.slices.index(sl)], frames)
    assert batch["dones"].any(), "no episode ended: the replay checked no reset"
    with torch.no_grad():
        logits, values = trainer.policy(batch["obs"].reshape(-1, 64, 64, 3))
        logp = torch.distributions.Categorical(logits=logits).log_prob(batch["actions"].reshape(-1))
    torch.testing.assert_close(logp, batch["logps"].reshape(-1), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(values, batch["values"].reshape(-1), rtol=1e-5, atol=1e-5)


def test_env_groups_are_refused_beyond_the_envs():
    from toolkit.cli import UserError

    with pytest.raises(UserError, match="env_groups"):
        PPOConfig(num_envs=2, env_groups=3).check()


def test_bf16_autocast_keeps_outputs_and_gradient_close_to_float32():
    torch.manual_seed(0)
    policy = Policy(NUM_ACTIONS, [16, 32, 32], 256)
    obs = torch.randint(0, 256, (64, 64, 64, 3), dtype=torch.uint8)
    with torch.no_grad():
        logits, values = policy(obs)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits16, values16 = policy(obs)
    assert logits16.dtype == torch.float32 and values16.dtype == torch.float32  # heads run in float32
    torch.testing.assert_close(logits16, logits, atol=2e-3, rtol=0)
    torch.testing.assert_close(values16, values, atol=0.05, rtol=0)

    mb = {
        "obs": obs,
        "actions": torch.randint(0, NUM_ACTIONS, (64,)),
        "logps": logits.log_softmax(-1)[:, 0],
        "values": values,
        "advantages": torch.randn(64),
        "returns": values + torch.randn(64),
    }
    grads = {}
    for name, autocast in (
        ("fp32", torch.autocast("cpu", enabled=False)),
        ("bf16", torch.autocast("cpu", dtype=torch.bfloat16)),
    ):
        policy.zero_grad()
        ppo_gradient(policy, mb, 16, 0.2, 0.01, 0.5, lambda ac=autocast: ac)
        grads[name] = torch.cat([p.grad.flatten() for p in policy.parameters()])
    cosine = torch.nn.functional.cosine_similarity(grads["fp32"], grads["bf16"], dim=0)
    assert cosine > 0.99, float(cosine)


def test_trainer_with_bf16_runs_its_trunk_in_bf16_and_keeps_float32_state(tmp_path, bf16_allowed):
    trainer = _trainer(tmp_path, precision="bf16", env_groups=2)
    trunk_dtypes = set()
    trainer.policy.trunk.register_forward_hook(lambda module, args, out: trunk_dtypes.add(out.dtype))
    before = [p.detach().clone() for p in trainer.policy.parameters()]
    summary = trainer.train()
    assert trunk_dtypes == {torch.bfloat16}, trunk_dtypes
    assert summary["total_timesteps"] == 240
    assert all(p.dtype == torch.float32 for p in trainer.policy.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.policy.parameters(), strict=True))
    assert [venv.num_envs for venv in trainer.venvs] == [2, 3]  # 5 envs in 2 groups, split at round(2.5) = 2


def test_bf16_on_a_cpu_that_emulates_it_is_refused_in_one_line(tmp_path, monkeypatch):
    import toolkit.runtime
    from toolkit.cli import UserError

    monkeypatch.setattr(toolkit.runtime, "native_bf16", lambda: False)
    with pytest.raises(
        UserError,
        match=r"^config key 'precision': bf16 on this CPU is emulated \(torch reports "
        r"\w+, no AVX512-BF16 or AMX\) and runs about 10x slower",
    ) as err:
        _trainer(tmp_path, precision="bf16", device="cpu")
    assert "\n" not in str(err.value) and not (tmp_path / "run").exists()  # refused before writing anything


def test_native_bf16_reads_what_torch_reports_and_honours_isa_caps(monkeypatch):
    from toolkit.runtime import native_bf16

    uncapped = os.environ.get("ONEDNN_MAX_CPU_ISA") is None and os.environ.get("ATEN_CPU_CAPABILITY") is None
    hardware = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    if uncapped:
        assert native_bf16() == hardware
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # oneDNN's convolutions then emulate bf16 (docs/speed.md)
    assert native_bf16() is False


def test_learned_returns_are_tallied_per_group_in_rollouts_and_evaluation(tmp_path):
    """A learned reward of 1 per frame makes every episode's learned return its length, in both level sets."""
    trainer = _trainer(tmp_path, env_groups=2, eval_interval=1, total_timesteps=480)
    trainer.reward_source = lambda obs: torch.ones(len(obs), device=obs.device)
    trainer.train()
    for stats in (trainer.stats, trainer.eval_stats):
        assert len(stats.len) > 0, "no episode ended"
        assert list(stats.learned) == [float(n) for n in stats.len]


@pytest.mark.skipif(
    "ATEN_CPU_CAPABILITY" in os.environ,
    reason="ATEN_CPU_CAPABILITY overrides torch's kernels but not inductor's, whose compiled policy then gives NaN",
)
def test_compiled_rollout_matches_the_eager_one(tmp_path):
    from torch._dynamo.utils import counters

    eager = _trainer(tmp_path / "eager").collect_rollout()
    compiled_trainer = _trainer(tmp_path / "compiled", compile=True)
    counters.clear()
    compiled = compiled_trainer.collect_rollout()
    assert counters["stats"]["unique_graphs"] >= 1, "the rollout did not go through the compiled forward pass"
    torch.testing.assert_close(compiled["logps"], eager["logps"], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(compiled["values"], eager["values"], rtol=1e-4, atol=1e-4)
    assert torch.equal(compiled["actions"], eager["actions"]) and torch.equal(compiled["obs"], eager["obs"])
