"""Which image is this process running in? Stamped into every run record's provenance.

The digest of an image is not known while it is built, so it is read at run time from
what each engine leaves inside the container: podman's ``/run/.containerenv`` (image
name and id), Apptainer's ``/.singularity.d/labels.json`` and ``APPTAINER_NAME``,
docker's ``/.dockerenv``. ``BENCH_IMAGE``/``BENCH_TARGET`` are baked into every image;
``BENCH_IMAGE_DIGEST`` (set by a launcher that knows it) overrides what is found.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["image_info"]


def _containerenv(path: Path) -> dict[str, str]:
    """podman's key="value" lines (name, id, image, imageid, engine, rootless)."""
    out = {}
    for line in path.read_text(errors="replace").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip().strip('"')
    return out


def _labels(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def image_info(
    root: str | Path = "/", env: Mapping[str, str] | None = None
) -> dict[str, str | None]:
    """``{engine, image, digest, target}`` of the enclosing container; all None outside one.

    ``root`` and ``env`` exist for tests (a fake filesystem and environment).
    """
    root = Path(root)
    env = os.environ if env is None else env
    info: dict[str, str | None] = {
        "engine": None,
        "image": env.get("BENCH_IMAGE") or None,
        "digest": None,
        "target": env.get("BENCH_TARGET") or None,
    }
    containerenv = root / "run" / ".containerenv"
    sing = root / ".singularity.d"
    if containerenv.is_file():
        fields = _containerenv(containerenv)
        info["engine"] = fields.get("engine", "podman").split("-")[0] or "podman"
        info["image"] = fields.get("image") or info["image"]
        if fields.get("imageid"):
            imageid = fields["imageid"]
            info["digest"] = imageid if ":" in imageid else f"sha256:{imageid}"
    elif sing.is_dir() or env.get("APPTAINER_NAME") or env.get("SINGULARITY_NAME"):
        info["engine"] = "apptainer"
        labels = _labels(sing / "labels.json")
        name = env.get("APPTAINER_NAME") or env.get("SINGULARITY_NAME")
        info["image"] = name or labels.get("bench.image") or info["image"]
        info["target"] = info["target"] or labels.get("bench.target")
    elif (root / ".dockerenv").exists():
        info["engine"] = "docker"
    if env.get("BENCH_IMAGE_DIGEST"):
        info["digest"] = env["BENCH_IMAGE_DIGEST"]
    if info["engine"] is None and not env.get("BENCH_IMAGE"):
        return {"engine": None, "image": None, "digest": None, "target": None}
    return info
