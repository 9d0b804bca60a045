#!/usr/bin/env bash
# Run the GPU benchmarks on a CUDA machine whose image has jax[cuda], flax, optax and chex.
# Missing packages (gymnax, distrax and their pure-Python needs) come as wheels in .whl/,
# made on a machine with network access by:
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64 \
#     --platform any -d .whl gymnax==1.0.1 distrax==0.1.9 tfp-nightly gymnasium farama-notifications \
#     dm-tree decorator gast
# Usage: bash benchmarks/gpu.sh STAGE [OUTDIR]; STAGE is one of
#   scaling-ppo   PPO env steps/s against seeds (up to 4096) and envs per seed (python -m benchmarks)
#   scaling-rest  the same for REINFORCE and SAC
#   acceptance    scripts/ppo_acceptance.py (all five runs, Breakout-MinAtar included)
#   sac-acceptance  scripts/sac_acceptance.py (Pendulum and discrete CartPole, 16 seeds each)
#   sweep         benchmarks/sweep_throughput.py: 3x3 grid x 8 seeds against one 8-seed run, and --block 8
#   tests         the test suite on the GPU (PUREJAXPG_TEST_PLATFORM=cuda)
# Results go to benchmarks/results/ and are copied to OUTDIR (default: $OUT or /tmp/gpu-out).
# SMOKE=1 runs the scaling stages at their smallest budget (python -m benchmarks --smoke), on any
# machine: the docs test does so to check the command.
set -uo pipefail
cd "$(dirname "$0")/.."
stage=${1:?stage}
out=${2:-${OUT:-/tmp/gpu-out}}
mkdir -p "$out"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
smoke=${SMOKE:+--smoke}
case "$stage" in
  scaling-ppo) python3 -m benchmarks --mode full --algos ppo --seeds "${SEEDS:-1,64,256,1024,2048,4096}" \
                 --no-baselines --out-dir "$out" $smoke 2>&1 | tee "$out/scaling-ppo.log" ;;
  scaling-rest) python3 -m benchmarks --mode full --algos reinforce,sac --seeds "${SEEDS:-1,64,1024,4096}" \
                  --no-baselines --out-dir "$out" $smoke 2>&1 | tee "$out/scaling-rest.log" ;;
  acceptance) python3 scripts/ppo_acceptance.py --only "${ONLY:-breakout,pendulum,acrobot,cartpole,cartpole-kl}" \
                --json "$out/ppo_acceptance-gpu.json" --out /tmp/runs 2>&1 | tee "$out/acceptance.log" ;;
  sac-acceptance) python3 scripts/sac_acceptance.py --json "$out/sac_acceptance-gpu.json" --out /tmp/runs \
                    2>&1 | tee "$out/sac-acceptance.log" ;;
  sweep) python3 benchmarks/sweep_throughput.py --block "${BLOCK:-8}" --out "$out/sweep_throughput-gpu.json" \
           2>&1 | tee "$out/sweep.log" ;;
  tests) PUREJAXPG_TEST_PLATFORM=cuda python3 -m pytest -q -p no:cacheprovider -n 0 2>&1 | tee "$out/tests-gpu.log" ;;
  *) echo "unknown stage $stage"; exit 2 ;;
esac
