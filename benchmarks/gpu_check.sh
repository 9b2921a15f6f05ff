#!/usr/bin/env bash
# The GPU figures of the PPO speed work in one call on a lent H100/H200 (about 10 minutes):
#   1. benchmarks/ppo_throughput.py at the reference sizes, every speed option on its own and together;
#   2. benchmarks/curve_match.py: plain path vs bf16 + env_groups 2, same seeds, reference coinrun config.
# Results go to $OUT (default runs/gpu_check). For a GPU machine with PyTorch (Python 3.12) but no procgen and
# no network, fetch the wheels beforehand into .whl/ (git-ignored), the versions of constraints.txt:
#   for p in procgen-mirror==0.10.7 gym3==0.3.3 gym-notices==0.1.0 cffi==1.17.1 pycparser==3.12; do
#     pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl $p; done
#   pip wheel --no-deps gym==0.26.2 -w .whl      # gym has no wheel on PyPI
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

timeout "${CURVES_S:-300}" python3 benchmarks/curve_match.py --ppo_config configs/ppo/coinrun.yaml \
    --total_timesteps "${CURVE_STEPS:-262144}" --seeds 0,1 --changes '{precision: bf16, env_groups: 2}' \
    --device cuda --out_dir /tmp/curve_match 2>&1 | grep -v -i -E "gym|warn" | tail -n 40 | tee "$OUT/curve_match.log"
cp /tmp/curve_match/curve_match.json /tmp/curve_match/curves.png "$OUT/" 2>/dev/null || true
