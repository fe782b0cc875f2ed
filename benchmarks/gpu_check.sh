#!/usr/bin/env bash
# The GPU check: one epoch of SPIDE, 784-256-10 on MNIST 8k/2k, on cuda_standalone (brian2cuda),
# in one call of at most 10 minutes on a GPU machine without a package registry.
#
#   bash benchmarks/gpu_check.sh [--dry-run] [DIR]      # DIR: from gpu_prepare.sh
#
# It installs nothing system-wide: the wheels of DIR/wheelhouse are unpacked into a scratch
# directory on PYTHONPATH (python3 >= 3.12 with numpy 2.x must be there), libcurand is taken
# from the machine's CUDA or from DIR/lib, and benchmarks/gpu_epoch.py trains the epoch with
# the Trainer on cuda_standalone in DIR/projects: the binaries compiled by gpu_prepare.sh are
# reused when the code generated there is the code they were compiled from, else recompiled
# there (nvcc needed) and the JSON says why. It writes $OUT/gpu_check.json (training and
# evaluation samples/s, the compile path, the test accuracy, the largest weight difference to
# the cpp_standalone reference epoch) and $OUT/gpu_check.log.
#
# --dry-run (on a machine without a GPU): finds the wheels, data, reference and binaries,
# regenerates the code and checks it against the binaries, checks that the binaries' libraries
# resolve, and writes the JSON with the GPU fields null.
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=0
DIR=gpu_prepared
for arg in "$@"; do
    case "$arg" in
        --dry-run) DRY=1 ;;
        -*) echo "gpu_check.sh: unknown option $arg" >&2; exit 2 ;;
        *) DIR=$arg ;;
    esac
done
OUT=${OUT:-$DIR/out}
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
JSON="$OUT/gpu_check.json"
PY=${PYTHON:-python3}
exec > >(tee -a "$LOG") 2>&1

fail() {  # write the JSON of a check that stopped, and stop
    "$PY" - "$JSON" "$1" "$DRY" <<'EOF' || echo "{\"error\": \"$1\"}" > "$JSON"
import json, sys
json.dump({"error": sys.argv[2], "dry_run": sys.argv[3] == "1", "train_samples_per_s": None,
           "evaluation_samples_per_s": None, "test_accuracy": None,
           "max_weight_difference": None}, open(sys.argv[1], "w"), indent=2)
EOF
    echo "gpu_check.sh: $1" >&2
    exit 1
}

echo "== $(date -u +%FT%TZ) gpu_check.sh (dry run: $DRY) in $PWD, prepared directory $DIR"
for need in data/t10k-images-idx3-ubyte.gz data/t10k-labels-idx1-ubyte.gz reference.npz \
    projects/train/main projects/evaluate/main projects/train/fbsnn_build.json; do
    [ -e "$DIR/$need" ] || fail "$DIR/$need is missing: run benchmarks/gpu_prepare.sh here first"
done
"$PY" -c 'import sys, numpy; assert sys.version_info[:2] == (3, 12), sys.version' ||
    fail "$PY must be Python 3.12 with numpy (the wheels are cp312)"

# the wheels, unpacked (a wheel is a zip archive of its site-packages files)
SITE=$(mktemp -d "${TMPDIR:-/tmp}/fbsnn_site.XXXXXX")
count=0
for wheel in "$DIR"/wheelhouse/*.whl; do
    [ -e "$wheel" ] || fail "no wheels in $DIR/wheelhouse"
    "$PY" -m zipfile -e "$wheel" "$SITE" || fail "cannot unpack $wheel"
    count=$((count + 1))
done
# a wheel's .pth files (setuptools' distutils shim, which brian2 needs on Python 3.12) are
# processed only in a site directory: sitecustomize makes the scratch directory one
printf '%s\n' 'import os, site' \
    'site.addsitedir(os.path.dirname(os.path.abspath(__file__)))' > "$SITE/sitecustomize.py"
echo "unpacked $count wheels into $SITE"
export PYTHONPATH="$SITE:$PWD" PYTHONHASHSEED=0 PYTHONNOUSERSITE=1
"$PY" -c 'import brian2, brian2cuda, fbsnn_brian; print("brian2", brian2.__version__, "from", brian2.__file__)' ||
    fail "the unpacked wheels do not import"

# libcurand: the machine's CUDA, else the prepared copy
LIBS=$(mktemp -d "${TMPDIR:-/tmp}/fbsnn_lib.XXXXXX")
if ! ldconfig -p 2>/dev/null | grep -q 'libcurand.so.10' &&
    ! ls /usr/local/cuda*/lib64/libcurand.so.10 >/dev/null 2>&1 &&
    ! ls /usr/local/cuda*/targets/*/lib/libcurand.so.10 >/dev/null 2>&1; then
    if [ -e "$DIR/lib/libcurand.so.10.xz" ]; then
        xz -dc "$DIR/lib/libcurand.so.10.xz" > "$LIBS/libcurand.so.10"
    fi
fi
CUDA_LIBS=$(ls -d /usr/local/cuda*/lib64 /usr/local/cuda*/targets/*/lib 2>/dev/null | tr '\n' :)
export LD_LIBRARY_PATH="$LIBS:${CUDA_LIBS}${LD_LIBRARY_PATH:-}"
MISSING=$(ldd "$DIR/projects/train/main" "$DIR/projects/evaluate/main" | grep 'not found' | sort -u)
echo "libraries not found: ${MISSING:-none}"

if [ "$DRY" = 1 ]; then
    export FBSNN_COMPUTE_CAPABILITY=${FBSNN_COMPUTE_CAPABILITY:-9.0}
    GPU="none (dry run)"
else
    command -v nvidia-smi >/dev/null || fail "nvidia-smi not found: no GPU driver here"
    GPU=$(nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv,noheader | head -1)
    echo "GPU: $GPU"
    [ -z "$MISSING" ] || fail "the binaries cannot load: $MISSING (prepare with --with-curand)"
    # the compute capability is taken from nvidia-smi: another one than the prepared 9.0 makes
    # the Trainer recompile there (and say so)
    unset FBSNN_COMPUTE_CAPABILITY
fi

start=$(date +%s)
"$PY" benchmarks/gpu_epoch.py --device cuda_standalone --data "$DIR/data" \
    --project "$DIR/projects" --reference "$DIR/reference.npz" --json "$JSON.part" \
    $([ "$DRY" = 1 ] && echo --dry-run) || fail "benchmarks/gpu_epoch.py failed (see $LOG)"
"$PY" - "$JSON.part" "$JSON" "$DIR" "$GPU" "$MISSING" "$(($(date +%s) - start))" <<'EOF'
import json, sys
from pathlib import Path
result = json.loads(Path(sys.argv[1]).read_text())
prepared = Path(sys.argv[3])
reference = json.loads((prepared / "reference.json").read_text())
result.update(
    gpu=sys.argv[4],
    libraries_not_found=sys.argv[5] or None,
    check_wall_s=int(sys.argv[6]),
    reference_cpp_standalone={
        key: reference.get(key)
        for key in ("host", "train_samples_per_s", "evaluation_samples_per_s", "test_accuracy")
    },
    prepared=json.loads((prepared / "manifest.json").read_text())
    if (prepared / "manifest.json").is_file() else None,
)
Path(sys.argv[2]).write_text(json.dumps(result, indent=2) + "\n")
Path(sys.argv[1]).unlink()
print(json.dumps(result, indent=2))
EOF
rm -rf "$SITE" "$LIBS"
echo "== written $JSON"
