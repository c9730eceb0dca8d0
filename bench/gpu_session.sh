#!/usr/bin/env bash
# The GPU session in a few device calls: install, environment, CUDA tests, benchmarks, training.
#
#   bash bench/gpu_session.sh PHASE [PHASE ...]        (from the repository root, on the GPU machine)
#
# Phases (run in the order given; each call of the device tool has 10 minutes, so pick phases
# that fit: the suggested calls are `tests`, `bench`, then `tf32 train`):
#   tests    pytest, CUDA cases only: `-m cuda` over tests/ (every test parametrized on
#            device="cuda", and the kernel tests of tests/kernels/); with NVCC_CHECK=1
#            also the nvcc compile checks of tests/kernels/test_cuda_sources.py -> tests.log,
#            tests-junit.xml
#   smoke    python -m bench --device cuda --quick (every case, tiny sizes)  -> smoke.log
#   bench    python -m bench --device cuda, strict fp32 on both sides (TF32 off in minicnn,
#            cuBLAS and cuDNN), the whole GPU suite  -> bench-fp32.log, cuda-*.json, cuda-*.md
#   tf32     the same with --tf32 on both sides, for the GEMM-bound families (conv, model)
#            -> bench-tf32.log, cuda-*.json, cuda-*.md
#   step     only the ResNet-18 CIFAR training step (time and peak memory), fp32 then TF32
#            -> step.log, cuda-*.json x2 (no .md)
#   train    issue 7's run: minicnn train --model resnet18_cifar --dataset shapes --device cuda
#            (run folder in /tmp)  -> train.log, train-summary.json, train-history.csv,
#            train-curves.png
# Every call also writes env.txt (GPU, driver, versions, git commit).
#
# With this workplace's device tool, one phase group per call (each under its 600 s limit):
#   run(command="bash bench/gpu_session.sh tests", timeout_s=600)
#   run(command="bash bench/gpu_session.sh bench", timeout_s=600)
#   run(command="bash bench/gpu_session.sh tf32 train", timeout_s=600)
# If `bench` runs out of time, split it: BENCH_ARGS="--only conv model" bash ... bench, then
# BENCH_ARGS="--only norm activation pool loss optim overhead softmax higher_order" bash ... bench
# (an interrupted bench run still writes the cases it finished).
#
# Results land in $OUT (the device tool brings back at most 8 files, 2 folders deep; this script
# writes flat files only and warns past 8). Copy the bench JSON/MD into bench/results/ and commit
# them. Knobs (environment): PYTHON (python3), BUDGET_S (570: the whole call, phases share it),
# PYTEST_WORKERS (8; 0 = no xdist), MAXFAIL (25), TEST_TIMEOUT (300 s per test), PYTEST_PATHS
# (tests), PYTEST_ARGS (extra pytest arguments),
# TRAIN_EPOCHS (8: the CPU run's recipe, README), TRAIN_ARGS (extra `minicnn train` arguments), BENCH_ARGS (extra bench args),
# SKIP_INSTALL (set: no pip install, for a dry run of the script on a machine without a GPU).
set -uo pipefail

PY=${PYTHON:-python3}
OUT=${OUT:-/tmp/gpu_session_out}
mkdir -p "$OUT"
BUDGET_S=${BUDGET_S:-570}
START=$SECONDS
export PYTHONUNBUFFERED=1
export HYPOTHESIS_PROFILE=${HYPOTHESIS_PROFILE:-ci}   # 12 derandomized examples per @given
STATUS=0

left() { echo $(( BUDGET_S - (SECONDS - START) )); }

# run LIMIT_S LOG CMD... : the command under a time limit (SIGINT first, so pytest/bench still
# print their summaries and write their files), output to the terminal and to $OUT/LOG
run() {
    local limit=$1 log=$2; shift 2
    if (( limit < 20 )); then
        echo "!! no time left for: $*" | tee -a "$OUT/$log"; STATUS=1; return 1
    fi
    echo "== $(date -u +%H:%M:%S) [limit ${limit}s] $*" | tee -a "$OUT/$log"
    timeout -s INT -k 30 "$limit" "$@" 2>&1 | tee -a "$OUT/$log"
    local rc=${PIPESTATUS[0]}
    echo "== rc=$rc after $(( SECONDS - START ))s of the call" | tee -a "$OUT/$log"
    (( rc == 0 )) || STATUS=1
    return "$rc"
}

setup() {
    {
        echo "# gpu_session $(date -u +%Y-%m-%dT%H:%M:%SZ) phases: $*"
        echo "git: $(git rev-parse HEAD 2>/dev/null) dirty: $(git status --porcelain \
            --untracked-files=no 2>/dev/null | wc -l) files"
        nvidia-smi 2>&1 | head -20
        nvcc --version 2>&1 | tail -2
        "$PY" --version 2>&1
    } > "$OUT/env.txt"
    if [[ -z ${SKIP_INSTALL:-} ]]; then
        "$PY" -m pip install -q --no-deps --no-build-isolation -e . >> "$OUT/env.txt" 2>&1 \
            || { echo "pip install -e . failed (see env.txt)"; cat "$OUT/env.txt"; exit 2; }
    fi
    "$PY" - >> "$OUT/env.txt" 2>&1 <<'EOF'
import importlib
for name in ("numpy", "cupy", "torch", "numba", "hypothesis", "pytest", "xdist", "minicnn"):
    try:
        m = importlib.import_module(name)
        print(f"{name} {getattr(m, '__version__', '?')}")
    except Exception as exc:  # noqa: BLE001
        print(f"{name}: {type(exc).__name__}: {exc}")
import minicnn as mc
print("mc.cuda.is_available():", mc.cuda.is_available())
if mc.cuda.is_available():
    import cupy
    import torch
    p = cupy.cuda.runtime.getDeviceProperties(0)
    print("device:", p["name"].decode() if isinstance(p["name"], bytes) else p["name"],
          "cc", cupy.cuda.Device(0).compute_capability, "SMs", p["multiProcessorCount"],
          "mem GiB", round(p["totalGlobalMem"] / 2**30, 1))
    print("cuda runtime", cupy.cuda.runtime.runtimeGetVersion(), "driver",
          cupy.cuda.runtime.driverGetVersion(), "cudnn", torch.backends.cudnn.version())
    print("tf32 state (default off):", mc.backends._tf32_state())
EOF
    cat "$OUT/env.txt"
}

phase_tests() {
    local xdist=()
    if [[ ${PYTEST_WORKERS:-8} != 0 ]] && "$PY" -c "import xdist" 2>/dev/null; then
        xdist=(-n "${PYTEST_WORKERS:-8}")
    fi
    local tmo=()
    "$PY" -c "import pytest_timeout" 2>/dev/null && tmo=(--timeout "${TEST_TIMEOUT:-300}")
    # PYTEST_PATHS (default: tests) and PYTEST_ARGS (e.g. "-k 'not op_table'", shell-quoted)
    # narrow a re-run
    local extra=()
    [[ -n ${PYTEST_ARGS:-} ]] && eval "extra=(${PYTEST_ARGS})"
    run $(( $(left) - 30 )) tests.log "$PY" -m pytest -q -m cuda ${PYTEST_PATHS:-tests} \
        "${xdist[@]}" "${tmo[@]}" --maxfail "${MAXFAIL:-25}" -rfE --tb=short \
        -p no:cacheprovider --junitxml "$OUT/tests-junit.xml" "${extra[@]}"
    # CI runs the nvcc compile checks; here they cost ~1-2 minutes, so only on request
    if [[ -n ${NVCC_CHECK:-} ]]; then
        run $(( $(left) - 10 )) tests.log "$PY" -m pytest -q tests/kernels/test_cuda_sources.py \
            -k nvcc -rfE --tb=short -p no:cacheprovider
    fi
}

phase_smoke() {
    run $(( $(left) - 10 )) smoke.log "$PY" -m bench --device cuda --quick --no-save ${BENCH_ARGS:-}
}

phase_bench() {
    run $(( $(left) - 10 )) bench-fp32.log "$PY" -m bench --device cuda --out "$OUT" --no-plots \
        ${BENCH_ARGS:-}
}

phase_tf32() {
    run $(( $(left) - 10 )) bench-tf32.log "$PY" -m bench --device cuda --tf32 --only conv model \
        --out "$OUT" --no-plots ${BENCH_ARGS:-}
}

phase_step() {
    # results JSON only (the .md is the same table as the log)
    local d=/tmp/gpu_session_step
    rm -rf "$d"; mkdir -p "$d"
    run $(( $(left) / 2 )) step.log "$PY" -m bench --device cuda --only model --out "$d" --no-plots
    run $(( $(left) - 10 )) step.log "$PY" -m bench --device cuda --only model --tf32 --out "$d" \
        --no-plots
    cp "$d"/*.json "$OUT"/ 2>/dev/null
}

phase_train() {
    local run_dir=/tmp/gpu_session_train
    rm -rf "$run_dir"
    # TQDM_DISABLE: no progress-bar redraws in the log, the per-epoch lines stay
    TQDM_DISABLE=1 run $(( $(left) - 15 )) train.log "$PY" -m minicnn train \
        --model resnet18_cifar --dataset shapes --device cuda --epochs "${TRAIN_EPOCHS:-8}" \
        --batch-size 64 --optimizer adam --lr 1e-3 \
        --out "$run_dir" ${TRAIN_ARGS:-}
    local f
    for f in summary.json history.csv curves.png; do
        [[ -f $run_dir/$f ]] && cp "$run_dir/$f" "$OUT/train-$f"
    done
    return 0
}

if (( $# == 0 )); then
    awk 'NR > 1 && /^#/ {print; next} NR > 1 {exit}' "$0"
    exit 2
fi
for p in "$@"; do
    case $p in
        tests|smoke|bench|tf32|step|train) ;;
        *) echo "unknown phase: $p (tests smoke bench tf32 step train)"; exit 2 ;;
    esac
done
setup "$@"
for p in "$@"; do
    "phase_$p"
done
n=$(find "$OUT" -type f | wc -l)
echo "== done in $(( SECONDS - START ))s, status $STATUS; $n file(s) in \$OUT:"
ls -la "$OUT"
(( n <= 8 )) || echo "!! more than 8 files in \$OUT: the device tool brings back only 8"
exit $STATUS
