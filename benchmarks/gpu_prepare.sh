#!/usr/bin/env bash
# Prepare the GPU check on this machine (no GPU needed): compile the cuda_standalone projects,
# train the cpp_standalone reference epoch, and collect wheels and data into one directory
# (git-ignored) that the device tool carries to the GPU machine, where
# benchmarks/gpu_check.sh runs the check without a package registry.
#
#   PYTHON=.venv-cuda/bin/python bash benchmarks/gpu_prepare.sh [DIR] [--with-curand]
#
# DIR (default gpu_prepared/) receives:
#   data/          the MNIST t10k idx files (8000 train / 2000 test after the seeded split)
#   wheelhouse/    the Python packages the check imports besides numpy, as cp312 wheels
#   projects/      train/ and evaluate/: the compiled projects (binary main, generated code,
#                  fbsnn_build.json: what the binary was compiled from), for compute
#                  capability $FBSNN_COMPUTE_CAPABILITY (default 9.0, an H100/H200)
#   reference.npz  final weights of the same epoch on cpp_standalone; reference.json its
#                  accuracy and speed; compile.json the compile times; manifest.json sizes
#   lib/           with --with-curand: libcurand.so.10 (xz, about 41 MiB) for a GPU machine
#                  whose CUDA lacks cuRAND
# Needs: brian2cuda (pip install -e ".[cuda]" in a Python 3.12 venv), nvcc, g++, network
# access to a package index for the wheels. Takes 15-25 min on 2 cores (two nvcc builds).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=gpu_prepared
CURAND=0
for arg in "$@"; do
    case "$arg" in
        --with-curand) CURAND=1 ;;
        -*) echo "gpu_prepare.sh: unknown option $arg" >&2; exit 2 ;;
        *) DIR=$arg ;;
    esac
done
PY=${PYTHON:-python3}
"$PY" -c 'import sys, brian2cuda; assert sys.version_info >= (3, 12)' || {
    echo "gpu_prepare.sh: $PY needs Python >= 3.12 with brian2cuda:" \
        'pip install -e ".[cuda]" in a Python 3.12 venv, then PYTHON=that/python' >&2
    exit 2
}
command -v nvcc >/dev/null || { echo "gpu_prepare.sh: nvcc (the CUDA toolkit) is needed" >&2; exit 2; }
export FBSNN_COMPUTE_CAPABILITY=${FBSNN_COMPUTE_CAPABILITY:-9.0}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONHASHSEED=0
mkdir -p "$DIR/data" "$DIR/wheelhouse" "$DIR/projects"
DATA=${MNIST_T10K:-/work/shared/data/mnist-t10k}
cp "$DATA"/t10k-images-idx3-ubyte* "$DATA"/t10k-labels-idx1-ubyte* "$DIR/data/"

echo "== wheels (the versions of this environment, numpy excluded: the GPU machine has it)"
# what `import fbsnn_brian` and the Trainer import on cuda_standalone; scipy, h5py, zarr and
# scikit-learn are imported only by other parts of the toolkit
PACKAGES="brian2 brian2cuda sympy mpmath jinja2 markupsafe pyparsing packaging setuptools
pandas python-dateutil tzdata xarray tqdm"
PINNED=$("$PY" - $PACKAGES <<'EOF'
import sys
from importlib.metadata import version
print(" ".join(f"{name}=={version(name)}" for name in sys.argv[1:]))
EOF
)
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform any -d "$DIR/wheelhouse" $PINNED

echo "== reference: one epoch on cpp_standalone"
"$PY" benchmarks/gpu_epoch.py --device cpp_standalone --data "$DIR/data" \
    --weights-out "$DIR/reference.npz" --json "$DIR/reference.json"

echo "== cuda_standalone projects for compute capability $FBSNN_COMPUTE_CAPABILITY"
"$PY" benchmarks/gpu_epoch.py --device cuda_standalone --data "$DIR/data" \
    --project "$DIR/projects" --compile-only --json "$DIR/compile.json"
# object files, results and static arrays (rewritten by every build) are not needed there: a
# binary is reused, or everything is rebuilt
find "$DIR/projects" \( -name '*.o' -o -name results -o -name static_arrays \) -prune \
    -exec rm -rf {} +

if [ "$CURAND" = 1 ]; then
    mkdir -p "$DIR/lib"
    LIB=$("$PY" -c 'import nvidia, pathlib; print(next(p for r in nvidia.__path__ for p in pathlib.Path(r).glob("*/lib/libcurand.so.*")))')
    xz -T0 -6 -c "$LIB" > "$DIR/lib/$(basename "$LIB").xz"
fi

"$PY" benchmarks/gpu_manifest.py "$DIR" "$FBSNN_COMPUTE_CAPABILITY"
du -sh "$DIR"
