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
#   peers         PPO against PureJaxRL's ppo.py on the same GPU, alternating (benchmarks/ppo_throughput.py) at
#                 SEEDS (default 1,64,2048), REPEATS runs each (default 1); PureJaxRL from PUREJAXRL=DIR
#                 (default ../shared/anchors/purejaxrl, outside the tree: carry a copy to an ignored folder
#                 inside it, e.g. .anchors/purejaxrl, and name that)
#   physics       PPO against brax.training on MuJoCo tasks, 8 seeds, Playground's published settings
#                 (benchmarks/physics_side_by_side.py --preset gpu) for each of ENVS (default
#                 playground/CartpoleBalance; Playground tasks only: brax/ENV has no gpu preset yet) at TOTAL
#                 env steps per seed (default: the preset's); PRESET=cpu takes the CPU presets (a smoke on a
#                 CPU: the gpu ones step 2048 envs)
# The physics stage needs the mujoco extra. Its wheels without warp-lang (149 MB; Playground, MJX and Brax
# import without it and the impl "jax" physics does not use it) are about 40 MB:
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64 \
#     --platform any -d .whl playground==0.2.0 brax==0.14.2 mujoco==4.0.1 mujoco-core==4.0.1 \
#     mujoco-studio==4.0.1 mujoco-mjx==3.17.0 glfw pyopengl ml_collections mediapy jaxopt trimesh tensorboardX \
#     flask flask-cors blinker itsdangerous
# Results go to benchmarks/results/ and are copied to OUTDIR (default: $OUT or /tmp/gpu-out).
# SMOKE=1 runs the scaling, peers and physics stages at their smallest budget (--smoke), on any
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
  peers) python3 benchmarks/ppo_throughput.py --seeds "${SEEDS:-1,64,2048}" --repeats "${REPEATS:-1}" \
           --purejaxrl "${PUREJAXRL:-../shared/anchors/purejaxrl}" --out "$out/ppo_throughput-gpu.json" $smoke \
           2>&1 | tee "$out/peers.log" ;;
  physics) for env in ${ENVS:-playground/CartpoleBalance}; do
             python3 benchmarks/physics_side_by_side.py --algo ppo --env "$env" --preset "${PRESET:-gpu}" --seeds 8 \
               ${TOTAL:+--total-timesteps "$TOTAL"} --out "$out/physics_side_by_side-ppo-${env//\//-}-gpu.json" $smoke \
               2>&1 | tee -a "$out/physics.log"
           done ;;
  tests) PUREJAXPG_TEST_PLATFORM=cuda python3 -m pytest -q -p no:cacheprovider -n 0 2>&1 | tee "$out/tests-gpu.log" ;;
  *) echo "unknown stage $stage"; exit 2 ;;
esac
