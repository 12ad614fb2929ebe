"""Cell keys: one module builds every key, from a payload that is stored in the cell's record.

A key is the hash of everything that decides a cell's output. The payload (``inputs``) is
kept in the record, so ``bench grid show`` can name the first field that changed when a
cell's key moves. What goes in:

- train cells: the weights they start from (the model identity for a first stage, the
  parent's key otherwise), the method and its ``VERSION``, the **resolved** method config
  (every dataclass field with its effective value, file paths replaced by content hashes,
  a setting this machine decides, like grpo's ``rollout_dtype: auto``, by what it resolves to),
  verifier versions for methods whose data or reward a verifier decides, the zoo's
  ``trust_remote_code``, seed, target and key-relevant package versions;
- eval cells: the weights (model identity or train key), each task with its version and
  its verifiers' versions, the resolved eval settings, seed, target and packages (lm-eval's
  and its backend's ``key_packages``: harness.backends), and the content hashes of the
  data-mirror files its tasks read (``data``, when any).

``KEY_SCHEMA`` changes whenever the payload's layout changes: every key moves with it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench_core.hashing import content_key, file_digest
from bench_core.packages import KEY_PACKAGES, package_versions

__all__ = [
    "KEY_SCHEMA",
    "KEY_PACKAGES",
    "content_key",
    "package_versions",
    "file_digest",
    "data_identity",
    "train_inputs",
    "eval_inputs",
    "first_difference",
]

KEY_SCHEMA = 2

# Fields the harness sets per stage: paths on this machine (never part of what decides a result), and
# target, seed and trust_remote_code, which the payload holds once at its top level.
PATH_FIELDS = ("model", "parent", "output_dir", "target", "seed", "trust_remote_code")


def data_identity(config: Any) -> Any:
    """The config with every string that names an existing file replaced by its content hash."""
    if isinstance(config, dict):
        return {k: data_identity(v) for k, v in config.items()}
    if isinstance(config, list | tuple):
        return [data_identity(v) for v in config]
    if isinstance(config, str) and (
        "/" in config or config.endswith((".jsonl", ".csv", ".json", ".parquet"))
    ):
        p = Path(config).expanduser()
        if p.is_file():
            return {"file": p.name, "sha256": file_digest(p)}
    return config


def train_inputs(
    *,
    weights: str | None,
    parent: str | None,
    step: str,
    method: str,
    config: dict[str, Any],
    trust_remote_code: bool,
    seed: int,
    target: str,
) -> dict[str, Any]:
    """The payload of a train cell; ``config`` is the method's resolved config."""
    from tasks import all_verifier_versions
    from trainers import machine_settings, method_config, method_version

    resolved = {k: v for k, v in config.items() if k not in PATH_FIELDS}
    resolved.update(machine_settings(method, resolved))  # e.g. rollout_dtype auto -> bf16
    return {
        "key_schema": KEY_SCHEMA,
        "kind": "train",
        "weights": weights if parent is None else None,
        "parent": parent,
        "method": method,
        "method_version": method_version(method),
        step: data_identity(resolved),
        "verifiers": all_verifier_versions() if method_config(method).VERIFIER_DRIVEN else {},
        "trust_remote_code": trust_remote_code,
        "packages": package_versions(KEY_PACKAGES["train"]),
        "seed": seed,
        "target": target,
    }


def eval_inputs(
    *,
    weights: str | None,
    train: str | None,
    tasks: dict[str, str],
    settings: dict[str, Any],
    trust_remote_code: bool,
    seed: int,
    target: str,
    data: dict[str, dict[str, str]] | None = None,
) -> dict[str, Any]:
    """The payload of an eval cell; ``tasks`` maps task name -> version, ``settings`` are resolved,
    ``data`` maps task -> {split: hash} of the mirror files it reads (a cell reading none has no
    ``data`` field, so its key is what it was before the mirror existed)."""
    from harness.backends import backend
    from harness.taskinfo import task_verifiers

    packages = KEY_PACKAGES["eval"] + backend(settings.get("backend", "hf")).key_packages
    return {
        "key_schema": KEY_SCHEMA,
        "kind": "eval",
        "weights": weights,
        "train": train,
        "tasks": dict(tasks),
        "verifiers": {t: task_verifiers(t) for t in tasks},
        "eval": settings,
        "trust_remote_code": trust_remote_code,
        "packages": package_versions(packages),
        "seed": seed,
        "target": target,
    } | ({"data": data} if data else {})


def first_difference(old: Any, new: Any, path: str = "") -> str | None:
    """``'distill.learning_rate 0.0002 -> 0.0001'``: the first field (sorted) where two payloads differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new), key=str):
            sub = f"{path}.{k}" if path else str(k)
            if k not in old:
                return f"{sub} added ({_short(new[k])})"
            if k not in new:
                return f"{sub} removed (was {_short(old[k])})"
            found = first_difference(old[k], new[k], sub)
            if found:
                return found
        return None
    if old != new:
        return f"{path or '(payload)'} {_short(old)} -> {_short(new)}"
    return None


def _short(value: Any) -> str:
    text = (
        json.dumps(value, sort_keys=True, default=str)
        if isinstance(value, dict | list)
        else str(value)
    )
    return text if len(text) <= 60 else text[:57] + "..."
