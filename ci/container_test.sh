#!/usr/bin/env bash
# Build the CPU image with podman and run `bench doctor` and a small eval inside it.
#
# Works on a fresh Debian machine with no container registry: the base image is a
# debootstrap'd bookworm rootfs imported into podman (built once, cached as a tarball),
# and the Dockerfile's FROM is pointed at it through the BASE_IMAGE build arg.
# Debian's podman needs `--runtime runc` (crun fails on cgroup v1 here) and explicit
# ulimits; containers/build.py puts both on every command line.
#
#   ci/container_test.sh            # everything; timings and image size at the end
#   BENCH_CONTAINER_SKIP_EVAL=1 ci/container_test.sh   # build + doctor only
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD
PY=${PYTHON:-$REPO/.venv/bin/python}
TARGET=cpu
IMAGE=localhost/bench:$TARGET
BASE=localhost/bench-base:bookworm
CACHE=${BENCH_CONTAINER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bench/containers}
ROOTFS_TAR=$CACHE/bookworm-minbase.tar
export HF_HUB_OFFLINE=1
# On a shared 2-core runner OpenMP's spin-waiting collapses under oversubscription:
# SmolLM2-135M generated 0.77 tok/s with 2 threads vs 3.5 tok/s with 1 at load 12.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

say() { printf '\n== %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
now() { date +%s; }

# 1. Tools (Debian package names: podman, runc, debootstrap).
missing=()
for tool in podman runc debootstrap; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
if ! "$PY" -c 'import containers.build' 2>/dev/null; then
  echo "no usable Python at $PY (set PYTHON=, or create .venv and pip install -e .)" >&2
  exit 2
fi

# 2. Base image: a minimal bookworm rootfs from the Debian mirror apt already uses.
t0=$(now)
if ! podman image exists "$BASE"; then
  if [ ! -s "$ROOTFS_TAR" ]; then
    mirror=$(grep -hoE '^(URIs:[[:space:]]*|deb[[:space:]]+)https?://[^[:space:]]+/debian/?' \
               /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
             | grep -v security | head -n1 | grep -oE 'https?://[^[:space:]]+' || true)
    mirror=${mirror:-http://deb.debian.org/debian}
    say "debootstrap bookworm from $mirror"
    mkdir -p "$CACHE"
    rootfs=$(mktemp -d "$CACHE/rootfs.XXXXXX")
    as_root debootstrap --variant=minbase bookworm "$rootfs" "$mirror"
    # debootstrap leaves its .debs and package lists behind: ~120 MB no image needs
    as_root rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
      "$rootfs"/var/lib/apt/lists/*
    as_root tar -C "$rootfs" -cf "$ROOTFS_TAR.tmp" .
    as_root rm -rf "$rootfs"
    mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
  fi
  say "importing $ROOTFS_TAR as $BASE"
  podman import "$ROOTFS_TAR" "$BASE" >/dev/null
fi
t_base=$(( $(now) - t0 ))

# 3. The CPU image (build/container/ is staged with the local torch wheel and pip's CA).
say "building $IMAGE"
t0=$(now)
"$PY" -m containers.build build "$TARGET" --engine podman --base-image "$BASE" --tag "$IMAGE"
t_build=$(( $(now) - t0 ))
podman image prune -f >/dev/null  # earlier builds' untagged images: ~1 GB each
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")

# 4. Inside the image.
results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
in_image() { "$PY" -m containers.build run "$TARGET" --engine podman --tag "$IMAGE" --results "$results" -- "$@"; }
say "bench doctor"
t0=$(now)
in_image doctor
say "imports"
"$PY" -m containers.build run "$TARGET" --engine podman --tag "$IMAGE" --entrypoint python -- \
  -c 'import harness, torch, transformers, lm_eval; print("torch", torch.__version__, "transformers", transformers.__version__)'
if [ -z "${BENCH_CONTAINER_SKIP_EVAL:-}" ]; then
  say "small eval of the bundled model"
  in_image eval --model smollm2-135m-instruct --tasks math_arith --limit 5
  records=$(find "$results" -path '*/records/*.json' | wc -l)
  echo "records written to the bind-mounted results dir: $records"
  [ "$records" -gt 0 ] || { echo "no run record came out of the container" >&2; exit 1; }
  # the record as the board reads it: written inside the image, stamped with it
  "$PY" - "$results" <<'PY'
import sys
from pathlib import Path

from leaderboards.record import load_record

for path in sorted(Path(sys.argv[1]).glob("records/*.json")):
    rec = load_record(path)
    task = rec.tasks[0]
    metric = task.metrics[task.primary_metric]
    print(f"record {path.name}: {rec.model_id} / {rec.stage}, {task.name} {task.primary_metric} "
          f"{metric.value:.3f} (n={metric.n}), backend {rec.backend}, dtype {rec.dtype}, "
          f"image {rec.provenance.container_image} {rec.provenance.container_digest}")
    assert rec.provenance.container_image, "the record does not name the image it was computed in"
PY
fi
t_run=$(( $(now) - t0 ))

say "summary"
printf 'base rootfs: %ss  build: %ss  runs: %ss  image size: %s MB\n' \
  "$t_base" "$t_build" "$t_run" "$(( size / 1000000 ))"
