#!/usr/bin/env bash
# The GPU check of the training step: bench.py --backend jax (the project's Keras networks, optimizers and losses,
# jitted under Keras' JAX backend) for Stage-I and Stage-II, batch 64 and 256, bf16 and float32, at the chapter's
# widths; one JSON line per run, then a table of img/s, TFLOP/s and the share of the GPU's bf16 peak.
#
#   bash docs/gpu_bench.sh wheels   # where pip reaches PyPI: keras and the two packages it needs that a machine
#                                   # with JAX but no Keras lacks (namex, optree), as Python 3.12 wheels in .whl/
#   bash docs/gpu_bench.sh          # on the GPU machine: installs .whl/ into /tmp/site if Keras is missing, runs
#
# Our lent GPU machine (JAX, no TensorFlow, no Keras): run `bash docs/gpu_bench.sh` there with `.whl` carried
# (.gitignore'd); the eight runs share one Python process and stop starting new ones after GPU_BENCH_SECONDS
# (default 360), so the whole check fits in about 8 minutes with the machine's start. The JSON lines are also
# written to $OUT/gpu_bench.jsonl ($OUT: the device tool's folder; .gpu/ elsewhere).
#
# Smaller runs (to try the script on a CPU): GPU_BENCH_STAGES="1" GPU_BENCH_BATCHES="4" GPU_BENCH_PRECISIONS="off"
# GPU_BENCH_ARGS="--gf-dim 8 --df-dim 4 --steps 2 --warmup 1" bash docs/gpu_bench.sh
# Another GPU: GPU_BENCH_ARGS="--peak-tflops N" where stackgan.benchmark.BF16_PEAK_TFLOPS does not name it.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "wheels" ]; then
    keras_version=$(python3 -c "import importlib.metadata as m; print(m.version('keras'))")
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
        -d .whl "keras==$keras_version" namex==0.1.0 optree==0.20.0
    ls -l .whl
    exit 0
fi

if ! python3 -c "import keras" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
out=${OUT:-.gpu}
mkdir -p "$out"
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
python3 - "$out/gpu_bench.jsonl" <<'EOF'
import gc
import json
import os
import sys
import time

import jax
import keras

import bench

start = time.monotonic()
budget = float(os.environ.get("GPU_BENCH_SECONDS", "360"))
extra = os.environ.get("GPU_BENCH_ARGS", "").split()
stages = os.environ.get("GPU_BENCH_STAGES", "1 2").split()
batches = os.environ.get("GPU_BENCH_BATCHES", "64 256").split()
precisions = os.environ.get("GPU_BENCH_PRECISIONS", "bf16 off").split()
print(f"jax {jax.__version__}, keras {keras.__version__} ({keras.backend.backend()}), {jax.devices()[0].device_kind}")
# Batch 64 of every stage and precision first: the rows README compares.
runs = [(s, b, p) for b in batches for s in stages for p in precisions]
results = []
with open(sys.argv[1], "w") as log:
    for stage, batch, precision in runs:
        row = dict(stage=int(stage), batch_size=int(batch), mixed_precision=precision)
        if time.monotonic() - start > budget:
            row["error"] = f"skipped: GPU_BENCH_SECONDS={budget:.0f} spent"
            print(json.dumps(row))
        else:
            began = time.monotonic()
            argv = ["--backend", "jax", "--stage", stage, "--batch-size", batch, "--mixed-precision", precision]
            try:
                row = bench.main(argv + extra)
            except Exception as error:  # an out-of-memory at batch 256 must not stop the other runs
                row["error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
                print(json.dumps(row))
            row["wall_s"] = round(time.monotonic() - began, 1)
        log.write(json.dumps(row) + "\n")
        results.append(row)
        keras.backend.clear_session()
        gc.collect()
        jax.clear_caches()

print("\nstage  batch  precision      img/s  TFLOP/s  share of bf16 peak  step TFLOP (counted / XLA)  wall s")
for r in results:
    if "error" in r:
        print(f"{r['stage']:>5}  {r['batch_size']:>5}  {r['mixed_precision']:>9}  {r['error']}")
        continue
    share = "-" if r["share_of_bf16_peak"] is None else f"{100 * r['share_of_bf16_peak']:.1f}%"
    flops = f"{r['step_tflop']} / {r['xla_step_tflop']}"
    print(
        f"{r['stage']:>5}  {r['batch_size']:>5}  {r['mixed_precision']:>9}  {r['img_per_s']:>9}  "
        f"{r['tflop_per_s']:>7}  {share:>18}  {flops:>26}  {r['wall_s']:>6}"
    )
print(f"bf16 peak: {results[0].get('bf16_peak_tflop_per_s')} TFLOP/s; {time.monotonic() - start:.0f} s in all")
EOF
