#!/usr/bin/env bash
# One device call (issue 25, item 5): on a machine with one CUDA GPU, the forecast and then the
# real search at the release's shapes (benchmarks/release_rehearsal.py --device cuda: the
# office31 space, resnet34 teacher, mobilenet_v3_small student, batch 256, bf16, 2 trials per
# GPU, 8 trials under ASHA, MLflow, then the evaluation of its best config over a fresh seed),
# printing forecast/actual per phase, GPU utilisation per phase and the peak memory of every
# stage, trial and evaluation run. Budgets cut to fit one call of under 10 minutes on an H100
# (release_rehearsal.GPU_BUDGETS).
#
#   benchmarks/gpu_release_check.sh [--dry-run] [--set KEY=VALUE ...]
#
# Results go to $OUT (a lent machine's folder that comes back; default ./gpu_release_check):
# release_rehearsal_cuda.json, release_rehearsal_cuda.log and nvidia_smi.txt. The work folder
# (data, teacher, storage) is under /tmp, so that only the results come back. The command
# stops itself at LIMIT_S seconds (default 540), so that what it wrote comes back even then.
# It needs the project's packages where it runs (pip install -e . -c constraints.txt: torch,
# ray, optuna, mlflow); one missing ends it at once naming them.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_release_check}
LIMIT_S=${LIMIT_S:-540}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
missing=$("$PYTHON" - <<'EOF'
import importlib.util
names = ["torch", "ray", "optuna", "mlflow", "pydantic", "pyarrow", "filelock"]
print(" ".join(n for n in names if importlib.util.find_spec(n) is None))
EOF
)
if [ -n "$missing" ]; then
  echo "error: $PYTHON lacks $missing; install the project first (pip install -e . -c constraints.txt)." >&2
  exit 2
fi
if [ "${1:-}" = "--dry-run" ]; then
  exec "$PYTHON" benchmarks/release_rehearsal.py --device cuda "$@"
fi
(nvidia-smi || echo "nvidia-smi: not found") > "$OUT/nvidia_smi.txt" 2>&1
work=$(mktemp -d /tmp/gpu_release_check.XXXXXX)
set -o pipefail
timeout --signal=INT --kill-after=20 "$LIMIT_S" \
  "$PYTHON" benchmarks/release_rehearsal.py --device cuda --work "$work" \
  --out "$OUT/release_rehearsal_cuda.json" "$@" 2>&1 | tee "$OUT/release_rehearsal_cuda.log"
