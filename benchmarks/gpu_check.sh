#!/usr/bin/env bash
# Proof of the GPU path, in one command from the repository root on a machine with an NVIDIA GPU:
#
#     bash benchmarks/gpu_check.sh
#
# 1. installs what is missing (gsplat 1.5.3, smplx, imageio-ffmpeg, pytest and their pure-Python
#    dependencies) from benchmarks/gpu_wheels/ without the network (pip --no-index), into
#    benchmarks/gpu_wheels/site/ (put in front of PYTHONPATH; the Python environment itself is
#    not changed); what is already importable is used as it is;
# 2. builds gsplat's CUDA kernels once (torch's JIT, MAX_JOBS = all cores, TORCH_CUDA_ARCH_LIST =
#    this GPU's compute capability unless set) with a tiny rasterization, and prints the time;
# 3. runs the CUDA tests: pytest -m cuda (test files that need Qt are left out when PySide6 is absent);
# 4. runs benchmarks/gpu_check.py: CPU-vs-gsplat PSNR, the speed table against its targets, the
#    viewport's single-frame path.
# Meant to take under 8 minutes on an H100/H200, most of it the first kernel build (cached for
# later runs in torch's extension folder, ~/.cache/torch_extensions or $TORCH_EXTENSIONS_DIR).
#
#     bash benchmarks/gpu_check.sh --prepare   # on a machine with the network: fill benchmarks/gpu_wheels/
#     bash benchmarks/gpu_check.sh --dry-run   # any machine: steps 1, the plan, the CUDA tests collected,
#                                              # gpu_check.py --dry-run (all on the CPU)
#
# --prepare downloads wheels for GPU_PYTHON_VERSION (default 3.12) and GPU_PLATFORM (default
# manylinux2014_x86_64; manylinux2014_aarch64 for Grace machines); copy benchmarks/gpu_wheels/
# (about 45 MB, ignored by git) next to this script on the GPU machine. Environment: PYTHON (the
# interpreter with PyTorch, default python3), GPU_CHECK_ARGS (extra arguments for gpu_check.py,
# e.g. --strict). Without a CUDA GPU the run prints "no CUDA GPU: skipped" and exits 0.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WHEELS="benchmarks/gpu_wheels"
SITE="$WHEELS/site"
PY="${PYTHON:-python3}"
# import name=distribution: what the GPU path and the tests import beyond PyTorch, NumPy, SciPy,
# imageio, numba, transformers (+ PyYAML, packaging), safetensors and tqdm
NEEDED=(gsplat=gsplat smplx=smplx imageio_ffmpeg=imageio-ffmpeg rich=rich markdown_it=markdown-it-py
        mdurl=mdurl pygments=pygments packaging=packaging typing_extensions=typing_extensions
        pytest=pytest iniconfig=iniconfig pluggy=pluggy)
PINS=(gsplat==1.5.3 "smplx>=0.1.28" "imageio-ffmpeg>=0.5" "rich>=12")

mode=run
for arg in "$@"; do
  case "$arg" in
    --prepare) mode=prepare ;;
    --dry-run) mode=dry-run ;;
    -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument '$arg' (use --prepare, --dry-run or nothing)" >&2; exit 2 ;;
  esac
done

pin_for() {  # the requirement to download for a distribution name
  local dist="$1" pin
  for pin in "${PINS[@]}"; do
    case "$pin" in "$dist"[=\>\<]*) echo "$pin"; return ;; esac
  done
  echo "$dist"
}

if [[ "$mode" == prepare ]]; then
  mkdir -p "$WHEELS"
  printf '*\n' > "$WHEELS/.gitignore"  # the folder and all in it stay out of git
  reqs=()
  for pair in "${NEEDED[@]}"; do reqs+=("$(pin_for "${pair#*=}")"); done
  echo "downloading into $WHEELS for Python ${GPU_PYTHON_VERSION:-3.12}, ${GPU_PLATFORM:-manylinux2014_x86_64}: ${reqs[*]}"
  "$PY" -m pip download --no-deps --only-binary=:all: --dest "$WHEELS" \
    --python-version "${GPU_PYTHON_VERSION:-3.12}" --platform "${GPU_PLATFORM:-manylinux2014_x86_64}" "${reqs[@]}"
  ls -l "$WHEELS"/*.whl
  echo "now copy $WHEELS/ to the GPU machine (same place in the repository) and run: bash benchmarks/gpu_check.sh"
  exit 0
fi

export PYTHONPATH="$ROOT/$SITE:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1  # nothing here downloads; never wait on a network
export QT_QPA_PLATFORM=offscreen

if ! "$PY" -c "import torch" 2>/dev/null; then
  echo "$PY has no PyTorch: no CUDA GPU: skipped"
  [[ "$mode" == dry-run ]] || exit 0
  echo "(dry run needs PyTorch; set PYTHON=...)" >&2; exit 1
fi
has_cuda="$("$PY" -c "import torch; print(int(torch.cuda.is_available()))")"
if [[ "$has_cuda" != 1 && "$mode" == run ]]; then
  echo "no CUDA GPU: skipped"
  exit 0
fi

started=$SECONDS
step() { printf '\n=== %s (%ds) ===\n' "$1" $((SECONDS - started)); }

step "environment"
"$PY" - <<'EOF'
import os, sys, torch
from torch.utils.cpp_extension import CUDA_HOME
print(f"python {sys.version.split()[0]} ({sys.executable}), torch {torch.__version__}, CUDA build {torch.version.cuda}")
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"GPU 0: {p.name}, {p.total_memory / 2**30:.0f} GiB, compute capability {p.major}.{p.minor}")
else:
    print("no CUDA GPU")
print(f"CUDA toolkit (nvcc) for the kernel build: {CUDA_HOME or 'not found (set CUDA_HOME)'}; {os.cpu_count()} cores")
EOF

step "packages"
mapfile -t missing < <("$PY" - "${NEEDED[@]}" <<'EOF'
import importlib.metadata, importlib.util, sys
for pair in sys.argv[1:]:
    module, dist = pair.split("=")
    if importlib.util.find_spec(module) is None:
        print(dist)
        continue
    try:
        version = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        version = "present"
    print(f"  {module}: {version}", file=sys.stderr)
EOF
)
qt=1
"$PY" -c "import PySide6.QtCore" 2>/dev/null || qt=0
if ((${#missing[@]})); then
  echo "  missing: ${missing[*]}"
  wanted=()
  for dist in "${missing[@]}"; do
    wheel="$(find "$WHEELS" -maxdepth 1 -iname "$(echo "$dist" | tr '-' '_')-*.whl" -print -quit 2>/dev/null || true)"
    if [[ -z "$wheel" ]]; then
      echo "gpu_check.sh: no wheel for $dist in $WHEELS/: run 'bash benchmarks/gpu_check.sh --prepare' on a" \
           "machine with the network and copy $WHEELS/ here (or install $dist)" >&2
      exit 1
    fi
    wanted+=("$(pin_for "$dist")")
  done
  install=("$PY" -m pip install --no-index --no-deps --disable-pip-version-check --find-links "$WHEELS"
           --target "$SITE" --upgrade "${wanted[@]}")
  echo "  ${install[*]}"
  "${install[@]}"
fi

ignores=()
if ((qt == 0)); then  # no Qt here: leave out the test files that import it, and pytest-qt
  while IFS= read -r file; do ignores+=("--ignore=$file"); done \
    < <(grep -lE '^(from|import) (PySide6|pyqtgraph)|^from avatar_app\.gui' tests/test_*.py || true)
  ignores+=(-p no:pytest-qt)
fi
tests=("$PY" -m pytest -m cuda -q -p no:cacheprovider "${ignores[@]}")

if [[ "$mode" == dry-run ]]; then
  step "dry run: what a GPU run does next"
  echo "  export MAX_JOBS=$(nproc) TORCH_CUDA_ARCH_LIST=<this GPU's compute capability>"
  echo "  build gsplat's kernels: a tiny rasterization (first run: the JIT build)"
  echo "  ${tests[*]}"
  echo "  $PY benchmarks/gpu_check.py ${GPU_CHECK_ARGS:-}"
  if "$PY" -c "import pytest" 2>/dev/null; then
    step "collecting the CUDA tests"
    "${tests[@]}" --collect-only
  fi
  step "gpu_check.py --dry-run (CPU)"
  # shellcheck disable=SC2086  # GPU_CHECK_ARGS holds several words
  "$PY" benchmarks/gpu_check.py --dry-run ${GPU_CHECK_ARGS:-}
  step "dry run done"
  exit 0
fi

step "gsplat kernels"
export MAX_JOBS="${MAX_JOBS:-$(nproc)}"
if [[ -z "${TORCH_CUDA_ARCH_LIST:-}" ]]; then
  TORCH_CUDA_ARCH_LIST="$("$PY" -c "import torch; print('%d.%d' % torch.cuda.get_device_capability(0))")"
  export TORCH_CUDA_ARCH_LIST
fi
echo "  MAX_JOBS=$MAX_JOBS TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST"
"$PY" - <<'EOF'
import os, sys, time
import torch
from torch.utils.cpp_extension import _get_build_directory

build = _get_build_directory("gsplat_cuda", verbose=False)
cached = os.path.exists(os.path.join(build, "gsplat_cuda.so"))
start = time.perf_counter()
from gsplat.cuda._backend import _C  # noqa: E402 - compiles the kernels (torch's JIT) unless built
if _C is None:
    sys.exit("gsplat: no CUDA kernels (no CUDA toolkit found: put nvcc on PATH or set CUDA_HOME)")
from gsplat import rasterization  # noqa: E402

g = torch.Generator(device="cuda").manual_seed(0)
n = 100
colors, alphas, _ = rasterization(
    torch.randn(n, 3, device="cuda", generator=g) * 0.1 + torch.tensor([0.0, 0.0, 2.0], device="cuda"),
    torch.randn(n, 4, device="cuda", generator=g), torch.full((n, 3), 0.02, device="cuda"),
    torch.full((n,), 0.9, device="cuda"), torch.rand(n, 3, device="cuda", generator=g),
    torch.eye(4, device="cuda")[None], torch.tensor([[[100.0, 0, 32], [0, 100.0, 32], [0, 0, 1]]], device="cuda"),
    64, 64, packed=False, rasterize_mode="classic")
torch.cuda.synchronize()
assert colors.shape == (1, 64, 64, 3) and float(alphas.max()) > 0.5, "the tiny rasterization drew nothing"
print(f"  gsplat kernels {'loaded from' if cached else 'built into'} {build} in {time.perf_counter() - start:.1f} s")
EOF

failed=()
step "CUDA tests: ${tests[*]}"
"${tests[@]}" || failed+=("pytest -m cuda")

step "benchmarks/gpu_check.py"
# shellcheck disable=SC2086  # GPU_CHECK_ARGS holds several words
"$PY" benchmarks/gpu_check.py ${GPU_CHECK_ARGS:-} || failed+=("gpu_check.py")

step "done"
if ((${#failed[@]})); then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "GPU path checked: kernels built, CUDA tests passed, PSNR above its floor (speed targets: see the table)"
