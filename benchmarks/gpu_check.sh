#!/usr/bin/env bash
# The GPU figures of the PPO speed work in one call on a lent H100/H200 (about 10 minutes):
#   1. benchmarks/ppo_throughput.py at the reference sizes, every speed option on its own and together;
#   2. benchmarks/curve_match.py: plain path vs bf16 + env_groups 2, same seeds, reference coinrun config.
# The GPU image has PyTorch but no procgen: carry the wheels in .whl (see README, "GPUs"). Results go to $OUT.
set -uo pipefail
OUT=${OUT:-runs/gpu_check}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc
  python3 -c "import torch, numpy, procgen; print('torch', torch.__version__, 'numpy', numpy.__version__)"; } \
    2>&1 | tee "$OUT/machine.txt"

timeout "${THROUGHPUT_S:-270}" python3 benchmarks/ppo_throughput.py --device cuda --chunk_sizes 0 \
    --env_threads "${ENV_THREADS:-4,8,16}" --compile_variants true --warmup_updates 1 --updates 2 \
    --out "$OUT/throughput.json" 2>&1 | grep -v -i -E "gym|warn" | tee "$OUT/throughput.log"

timeout "${CURVES_S:-300}" python3 benchmarks/curve_match.py -c configs/ppo/coinrun.yaml \
    --total_timesteps "${CURVE_STEPS:-262144}" --seeds 0,1 --changes '{precision: bf16, env_groups: 2}' \
    --device cuda --out_dir /tmp/curve_match 2>&1 | grep -v -i -E "gym|warn" | tail -n 40 | tee "$OUT/curve_match.log"
cp /tmp/curve_match/curve_match.json /tmp/curve_match/curves.png "$OUT/" 2>/dev/null || true
