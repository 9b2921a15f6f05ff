#!/usr/bin/env bash
# The GPU checks of the PPO speed work in one call on an H100/H200 machine (under 10 minutes):
#   1. tests/test_fast_paths.py on cuda: pipelined env groups, bf16 and the compiled (CUDA-graph) rollout;
#   2. benchmarks/ppo_throughput.py at the reference sizes, every speed option on its own and together;
#   3. benchmarks/curve_match.py: plain path vs bf16 + env_groups 2, two seeds, reference coinrun config
#      (held-out evaluation every 4 updates to fit the time; results are written after every run).
# Results go to $OUT (default runs/gpu_check). For a GPU machine with PyTorch (Python 3.12) but no procgen and
# no network, fetch the wheels beforehand into .whl/ (git-ignored), the versions of constraints.txt:
#   for p in procgen-mirror==0.10.7 gym3==0.3.3 gym-notices==0.1.0 cffi==1.17.1 pycparser==3.12; do
#     pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl $p; done
#   pip wheel --no-deps gym==0.26.2 -w .whl      # gym has no wheel on PyPI
# gym3 also imports imageio, and the code needs PyYAML and matplotlib: add their wheels if the machine lacks them.
set -uo pipefail
OUT=${OUT:-runs/gpu_check}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD PYTHONUNBUFFERED=1
quiet() { grep -v -E "^(Gym has been unmaintained|Please upgrade to Gymnasium|Users of this version of Gym|See the migration guide)"; }

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc
  python3 -c "import torch, numpy, yaml, matplotlib, imageio, procgen, baseline_agent.ppo
print('torch', torch.__version__, 'numpy', numpy.__version__, 'cuda', torch.cuda.is_available())"; } \
    2>&1 | quiet | tee "$OUT/machine.txt"
python3 -c "import torch, procgen, baseline_agent.ppo; assert torch.cuda.is_available()" 2>/dev/null \
    || { echo "preflight failed: see $OUT/machine.txt"; exit 1; }

TEST_DEVICE=cuda timeout "${TESTS_S:-100}" python3 -m pytest -q -p no:cacheprovider tests/test_fast_paths.py 2>&1 \
    | quiet | tail -n 30 | tee "$OUT/tests_cuda.log"

timeout "${THROUGHPUT_S:-220}" python3 benchmarks/ppo_throughput.py --device cuda --chunk_sizes 0 \
    --env_threads "${ENV_THREADS:-4,8,16}" --compile_variants true --warmup_updates 1 --updates 2 \
    --out "$OUT/throughput.json" 2>&1 | quiet | tee "$OUT/throughput.log"

timeout "${CURVES_S:-220}" python3 benchmarks/curve_match.py --ppo_config configs/ppo/coinrun.yaml \
    --total_timesteps "${CURVE_STEPS:-262144}" --seeds 0,1 --changes '{precision: bf16, env_groups: 2}' \
    --ppo_overrides '{eval_interval: 4, log_interval: 4}' --device cuda --out_dir /tmp/curve_match 2>&1 \
    | quiet | tail -n 40 | tee "$OUT/curve_match.log"
cp /tmp/curve_match/curve_match.json /tmp/curve_match/curves.png "$OUT/" 2>/dev/null || true
