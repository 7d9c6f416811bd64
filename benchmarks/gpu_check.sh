#!/usr/bin/env bash
# bnk on a CUDA GPU, JAX and PyTorch: the layer's own tests, then the throughput
# benchmark (benchmarks.run) at the CNN's batch of 64 and at 1024.
#
#   OUT=somewhere bash benchmarks/gpu_check.sh [tests] [eager] [compile]
#
# The parts named (all three if none): `tests` (about 2 min), `eager` (the benchmark
# without torch.compile at batches 64 and 1024, about 3 min), `compile` (torch.compile
# at batch 64; its compilations took over 150 s on an H200 machine's 16 cores).
# Runs under whatever python3 the machine has (it needs keras, jax with CUDA, torch
# with CUDA, pytest, pytest-xdist and pytest-timeout); CI never runs it. Writes, under
# $OUT: gpu.txt (the card and versions), tests-<backend>.log, results-<run>.md, and
# logs.tar.gz (each run's results.json and log, and the workers' logs).
# benchmarks/gpu.md records what one run measured.
set -u
out=${OUT:?set OUT to a folder for the results}
parts=${*:-tests eager compile}
mkdir -p "$out"
# JAX would otherwise take 75% of the card in each pytest worker.
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
{
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv
    KERAS_BACKEND=jax python3 -c 'import jax, keras, torch; print("jax", jax.__version__, jax.devices()); print("torch", torch.__version__, torch.cuda.get_device_name(0)); print("keras", keras.__version__)'
    grep -m1 "model name" /proc/cpuinfo
    nproc
} >"$out/gpu.txt" 2>&1
cat "$out/gpu.txt"

# The layer's and the CNN's tests; the pipeline's tests (and the serialization
# tests, which load models under every backend) need DVC, papermill and TensorFlow,
# which such a machine may lack, and do nothing GPU-specific.
tests=(tests/test_batch_norm_*.py tests/test_batch_renorm.py tests/test_cnn.py
       tests/test_fold.py tests/test_ghost_batches.py tests/test_recompute_statistics.py
       tests/test_keras_batch_normalization_suite.py)
if [[ " $parts " == *" tests "* ]]; then
    for backend in jax torch; do
        KERAS_BACKEND=$backend timeout 150 python3 -m pytest -q -n 8 -p no:cacheprovider \
            --timeout 60 -rfE --tb=short "${tests[@]}" >"$out/tests-$backend.log" 2>&1
        echo "tests on $backend (exit $?): $(tail -1 "$out/tests-$backend.log")"
    done
fi

# Each run under its own limit, so that one that overruns loses only itself.
bench() {
    local name=$1 limit=$2
    shift 2
    timeout "$limit" python3 -m benchmarks.run --repeats 3 --steps 20 --layer-reps 30 \
        --warmup 3 --matmul-n 8192 --out "$out/$name" "$@" >"$out/$name.log" 2>&1
    echo "benchmark $name (exit $?):"
    tail -6 "$out/$name.log"
    mv "$out/$name/results.md" "$out/results-$name.md"
    mv "$out/$name/results.json" "benchmarks/logs/$name.json"
    mv "$out/$name.log" benchmarks/logs/
    rm -rf "${out:?}/$name"
}
if [[ " $parts " == *" eager "* ]]; then
    bench eager-64 150 --backends jax,torch,torch-native --no-torch-compile --batch 64
    bench eager-1024 150 --backends jax,torch,torch-native --no-torch-compile --batch 1024
fi
if [[ " $parts " == *" compile "* ]]; then
    bench compile-64 400 --backends torch --batch 64
fi
tar czf "$out/logs.tar.gz" benchmarks/logs
