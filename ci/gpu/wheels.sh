#!/usr/bin/env bash
# What ci/gpu/check.sh carries to a GPU machine without network: wheels for Python 3.12 on
# manylinux x86_64, split into parts of at most PART_MIB each (a device call carries 64 MiB), and
# model/ (the bundled model's tokenizer and config, from which check.sh builds its models).
#
# The GPU machine is assumed to hold torch, transformers, peft and accelerate. The wheels are
# every distribution the project's dependencies (pyproject.toml, plus bitsandbytes) need beyond
# those four and what they require: the closure is read from this venv's installed metadata
# (never a copied list that drifts), at this venv's versions, the ones the tests ran with.
# matplotlib and its own dependencies stay behind: no check imports them.
#
#   bash ci/gpu/wheels.sh            # -> ci/gpu/wheels/part1 .. partN, ci/gpu/wheels/model
#   then, per part:  bash ci/gpu/check.sh install   (carrying ci/gpu/wheels/partK)
set -euo pipefail
cd "$(dirname "$0")/../.."

PY=${PYTHON:-.venv/bin/python}
OUT=${GPU_WHEELS:-ci/gpu/wheels}
PART_MIB=${PART_MIB:-60}
PLATFORMS=(manylinux_2_34_x86_64 manylinux_2_31_x86_64 manylinux_2_28_x86_64 manylinux_2_27_x86_64
           manylinux_2_24_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux_2_5_x86_64
           manylinux1_x86_64)
# PyPI has only sdists of these pure-Python packages: they are built into wheels here. Any other
# package without a matching wheel is an error (a wheel built here would lack its binaries).
BUILT_HERE="rouge-score sqlitedict word2number"
SKIP="matplotlib contourpy cycler fonttools kiwisolver pyparsing"

rm -rf "$OUT"
mkdir -p "$OUT/all" "$OUT/model"
echo '*' >"$OUT/.gitignore"

reqs=$OUT/requirements.txt
"$PY" - "$SKIP" >"$reqs" <<'PY'
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, requires, version

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name as canon

# The GPU machine's interpreter: markers are evaluated for it, not for this one.
ENV = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
       "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
       "implementation_name": "cpython", "platform_python_implementation": "CPython"}


def closure(names):
    seen: dict[str, set[str]] = {}
    todo = [Requirement(n) for n in names]
    while todo:
        req = todo.pop()
        name = canon(req.name)
        if name in seen and set(req.extras) <= seen[name]:
            continue
        seen[name] = seen.get(name, set()) | set(req.extras)
        try:
            lines = requires(name) or []
        except PackageNotFoundError:
            sys.exit(f"wheels.sh: {name} is not installed in this venv; run make setup first")
        for line in lines:
            dep = Requirement(line)
            extras = {""} | seen[name]
            if dep.marker is None or any(dep.marker.evaluate({**ENV, "extra": e}) for e in extras):
                todo.append(dep)
    return set(seen)


present = closure(["torch", "transformers", "peft", "accelerate"])
project = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
skip = {canon(n) for n in sys.argv[1].split()}
for name in sorted(closure([*project, "bitsandbytes"]) - present - skip):
    print(f"{name}=={version(name)}")
PY
echo "wheels.sh: $(wc -l <"$reqs") distributions beyond torch/transformers/peft/accelerate"

plat=()
for p in "${PLATFORMS[@]}"; do plat+=(--platform "$p"); done
# Wheels where PyPI has them; the few sdist-only pure-Python packages are built here.
sdists=()
while read -r req; do
    if ! "$PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
        --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none "${plat[@]}" \
        -d "$OUT/all" "$req" 2>/dev/null; then
        sdists+=("$req")
    fi
done <"$reqs"
for req in "${sdists[@]}"; do
    case " $BUILT_HERE " in
        *" ${req%%==*} "*) ;;
        *) echo "wheels.sh: no CPython 3.12 manylinux wheel of $req" >&2; exit 1 ;;
    esac
done
if [ ${#sdists[@]} -gt 0 ]; then
    echo "wheels.sh: building pure-Python wheels of ${sdists[*]}"
    "$PY" -m pip wheel -q --disable-pip-version-check --no-deps -w "$OUT/all" "${sdists[@]}"
fi
if ls "$OUT"/all/*.whl | grep -v -e '-py3-none-any' -e '-py2.py3-none-any' -e 'cp312' -e '-py312-' -e 'abi3' \
    -e 'none-manylinux' -e 'none-linux'; then
    echo "wheels.sh: the wheels above do not run on CPython 3.12" >&2
    exit 1
fi

# The bundled model's tokenizer and config: check.sh builds its models from them.
model=$(HF_HUB_OFFLINE=1 PYTHONPATH=$PWD "$PY" -c \
    'from harness.zoo import materialize; print(materialize("smollm2-135m-instruct"))')
for f in config.json generation_config.json tokenizer.json tokenizer_config.json chat_template.jinja; do
    [ -f "$model/$f" ] && cp "$model/$f" "$OUT/model/"
done

# First-fit decreasing into parts of at most PART_MIB; model/ rides with part1.
"$PY" - "$OUT" "$PART_MIB" <<'PY'
import shutil
import sys
from pathlib import Path

out, limit = Path(sys.argv[1]), int(sys.argv[2]) * 2**20
model = sum(f.stat().st_size for f in (out / "model").iterdir())
wheels = sorted((out / "all").glob("*.whl"), key=lambda p: -p.stat().st_size)
parts: list[list[Path]] = []
sizes: list[int] = []
for whl in wheels:
    size = whl.stat().st_size
    for i, used in enumerate(sizes):
        if used + size <= limit - (model if i == 0 else 0):
            parts[i].append(whl)
            sizes[i] += size
            break
    else:
        if size > limit:
            sys.exit(f"wheels.sh: {whl.name} alone is over {limit >> 20} MiB")
        parts.append([whl])
        sizes.append(size)
for i, part in enumerate(parts, 1):
    (out / f"part{i}").mkdir()
    for whl in part:
        shutil.move(whl, out / f"part{i}" / whl.name)
shutil.move(out / "model", out / "part1" / "model")
(out / "all").rmdir()
for i, part in enumerate(parts, 1):
    total = sum(f.stat().st_size for f in (out / f"part{i}").rglob("*") if f.is_file())
    names = ", ".join(sorted(p.name.split("-")[0] for p in part))
    print(f"wheels.sh: part{i} {total / 2**20:.1f} MiB ({len(part)} wheels: {names})")
PY
