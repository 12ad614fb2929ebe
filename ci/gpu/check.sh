#!/usr/bin/env bash
# The GPU lane as one prepared script, for a single-GPU machine without network that holds torch,
# transformers, peft and accelerate. Everything else travels as wheels (ci/gpu/wheels.sh), in
# parts of at most 60 MiB, installed part by part into .venv-gpu (--system-site-packages), which
# stays on the machine between calls:
#
#   bash ci/gpu/check.sh install            # once per carried part: ci/gpu/wheels/partK
#   bash ci/gpu/check.sh train [REPORT]     # QLoRA fp16/bf16, bf16 attention, plan vs peak, GRPO
#   bash ci/gpu/check.sh eval  [REPORT]     # HF evals fp16/bf16; with vLLM: agreement, train->eval
#
# Models are built on the machine from the bundled model's config and tokenizer (carried in
# part1/model). Each run writes ONE JSON report (default $OUT/gpu-check-<mode>.json, else
# ./gpu-check-<mode>.json): every check's pass/fail/skip with its error, the versions, peak GPU
# memory against the plan, tokens/s. Exit 1 when a check failed. Sized for at most 8 minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."

MODE=${1:-}
case $MODE in
    install | train | eval) ;;
    *) echo "usage: ci/gpu/check.sh install|train|eval [REPORT.json]" >&2; exit 2 ;;
esac
PY=${PYTHON:-python3}
VENV=${VENV_GPU:-.venv-gpu}
WHEELS=${GPU_WHEELS:-ci/gpu/wheels}

# No CUDA: stop here, in one line.
"$PY" - "$PY" <<'PY'
import sys

try:
    import torch
except ImportError:
    sys.exit(f"ci/gpu/check.sh: no CUDA here: {sys.argv[1]} has no torch (set PYTHON=)")
if not torch.cuda.is_available():
    sys.exit(
        f"ci/gpu/check.sh: no CUDA device here (torch {torch.__version__}, CUDA build "
        f"{torch.version.cuda}); run it on a GPU machine"
    )
PY

test -x "$VENV/bin/python" || "$PY" -m venv --system-site-packages "$VENV"
shopt -s nullglob
for part in "$WHEELS"/part*/; do
    wheels=("$part"*.whl)
    echo "check.sh: installing ${#wheels[@]} wheels of $part"
    # --no-deps: the parts arrive one call at a time; check.py names whatever is still missing
    "$VENV/bin/pip" install -q --no-index --no-deps --disable-pip-version-check "${wheels[@]}"
    if [ -d "$part/model" ]; then
        rm -rf "$VENV/bench-model"
        cp -r "$part/model" "$VENV/bench-model"
    fi
done
[ "$MODE" = install ] && exit 0

REPORT=${2:-${OUT:-.}/gpu-check-$MODE.json}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONPATH=$PWD
exec timeout 480 "$VENV/bin/python" ci/gpu/check.py "$MODE" --report "$REPORT" --model-files "$VENV/bench-model"
