"""The model zoo: ``harness/models.yaml`` (deltas) and model resolution.

Resolution of a name: an existing local directory → a zoo entry, by its name or by its
``hub`` id (case-insensitive; researchers type hub ids) → a raw ``org/name`` hub id. A
``@rev`` suffix (``Qwen/Qwen2.5-1.5B@<commit>``) pins a revision. Bundled and tiny models
are built locally; hub models come from the HF cache, then the hub unless
``HF_HUB_OFFLINE`` is set. Built models live under ``$BENCH_CACHE/models/<name>`` (default
``~/.cache/bench``).

An unpinned hub model that is in the HF cache resolves to the cached commit
(``refs/main``): its spec carries that hash as ``revision``, so the record's
``model_revision`` and the key's weights identity name the snapshot actually used.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bench_core.errors import BenchError, closest, pydantic_reason
from bench_core.extends import resolve_extends
from bench_core.offline import hub_offline
from bench_core.yamlio import DuplicateKeyError, load_strict

__all__ = [
    "ZOO_FILE",
    "LoraDefaults",
    "ModelSpec",
    "cache_dir",
    "load_zoo",
    "get_model",
    "model_identity",
    "materialize",
    "build_tiny",
    "is_materialized",
    "planner_facts",
    "cached_revision",
    "lineage_chain",
]

ZOO_FILE = Path(__file__).with_name("models.yaml")
COMPLETE = ".bench-complete"


MAX_ZOO_BYTES = 1 << 20  # a user's models file; the shipped one is ~20 KB

_Count = Field(default=None, ge=1)


class LoraDefaults(BaseModel):
    model_config = ConfigDict(extra="forbid")
    r: int = Field(default=16, ge=1)
    alpha: int = Field(default=32, ge=1)
    dropout: float = Field(default=0.05, ge=0, lt=1)


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
    params: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    hidden_size: int | None = _Count
    num_layers: int | None = _Count
    context_length: int | None = _Count
    vocab_size: int | None = _Count
    # attention heads and key/value heads (grouped-query attention: fewer kv heads), as in the
    # model's config.json: the planner sizes the KV cache and the k/v projections by their ratio
    # (unset: as many kv heads as heads, which overcounts a GQA model)
    num_attention_heads: int | None = _Count
    num_key_value_heads: int | None = _Count
    # Mixture of experts: every expert's weights are held, only experts_per_token compute
    num_experts: int | None = _Count
    experts_per_token: int | None = _Count
    # tiny models only: the chat template the build gives the tokenizer (a file under
    # harness/templates/, or "none" for a tokenizer without one); unset: the bundled one's
    build_template: str | None = None
    chat_template_required: bool = False
    thinks: bool = False
    trust_remote_code: bool = False
    lora: LoraDefaults = LoraDefaults()
    lineage: Lineage | None = None

    @field_validator("build_template")
    @classmethod
    def _template_name(cls, v: str | None) -> str | None:
        # a file name under harness/templates/, never a path: the build reads it
        if v is not None and (not _TEMPLATE.fullmatch(v) or ".." in v):
            raise ValueError("must be a file name under harness/templates/ (no '/') or none")
        return v


_TEMPLATE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def cache_dir() -> Path:
    return Path(os.environ.get("BENCH_CACHE", Path.home() / ".cache" / "bench")).expanduser()


def _read_user_file(file: Path) -> str:
    """$BENCH_MODELS: only a regular file under the size cap is read (a FIFO would block, a
    device such as /dev/zero never end)."""
    import stat

    st = file.stat()
    if not stat.S_ISREG(st.st_mode):
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(21, "Is a directory", str(file))
        raise BenchError(
            f"{file}: not a regular file (a FIFO or device?); "
            "$BENCH_MODELS must name a models.yaml-like file"
        )
    if st.st_size > MAX_ZOO_BYTES:
        raise BenchError(
            f"{file}: {st.st_size:,} bytes, over the {MAX_ZOO_BYTES:,} a models file may have; "
            "$BENCH_MODELS must name a models.yaml-like file"
        )
    with open(file, "rb") as f:
        return f.read(MAX_ZOO_BYTES + 1).decode()


def _read_zoo(file: Path, user: bool = False) -> tuple[dict, dict[str, dict]]:
    try:
        data = load_strict(_read_user_file(file) if user else file.read_text()) or {}
    except DuplicateKeyError as e:  # safe_load would keep the last entry silently
        raise BenchError(f"{file}: {str(e).splitlines()[0]}") from None
    except OSError as e:  # $BENCH_MODELS naming a missing file or a directory
        raise BenchError(
            f"{file}: cannot read the model zoo ({e.strerror}); "
            "$BENCH_MODELS must name a models.yaml-like file"
        ) from None
    except UnicodeDecodeError:
        raise BenchError(
            f"{file}: not a text file; a model zoo is a YAML mapping with `models:`"
        ) from None
    except yaml.YAMLError as e:
        raise BenchError(
            f"{file}: not valid YAML ({str(e).splitlines()[0]}); fix the syntax"
        ) from e
    if not isinstance(data, dict):
        raise BenchError(
            f"{file}: a model zoo is a mapping with `models:` (and optional `defaults:`)"
        )
    if not isinstance(data.get("models", {}), dict):
        raise BenchError(f"{file}: field 'models' must be a mapping of name -> entry")
    if not isinstance(data.get("defaults", {}) or {}, dict):
        raise BenchError(f"{file}: field 'defaults' must be a mapping of field -> value")
    for name, entry in (data.get("models") or {}).items():
        if entry is not None and not isinstance(entry, dict):
            raise BenchError(f"{file}: models.{name}: must be a mapping of field -> value")
    return data.get("defaults", {}) or {}, data.get("models", {}) or {}


@cache
def load_zoo(extra: str | None = None) -> dict[str, ModelSpec]:
    """The zoo, plus the entries of ``$BENCH_MODELS`` (a user's own models.yaml) when set."""
    defaults, raw = _read_zoo(ZOO_FILE)
    files = {name: ZOO_FILE for name in raw}
    user_defaults: dict = {}
    extra = extra or os.environ.get("BENCH_MODELS")
    if extra:
        user_defaults, user_raw = _read_zoo(Path(extra), user=True)
        if "trust_remote_code" in user_defaults:
            # it runs the hub repo's code: stated per entry, never for every model at once
            raise BenchError(
                f"{extra}: field 'defaults.trust_remote_code': not allowed in defaults; "
                "set it on the entries that need it"
            )
        raw = {**raw, **user_raw}
        files.update({name: Path(extra) for name in user_raw})
    zoo = {}
    for name in raw:
        _check_name(name, files[name])
        # lineage is a fact of one published checkpoint, never inherited
        resolved = resolve_extends(
            name, raw, str(files[name]), "models", never_inherited=("lineage",)
        )
        # a user's defaults are for the user's entries; the shipped ones stay as shipped
        base = {**defaults, **(user_defaults if files[name] != ZOO_FILE else {})}
        entry = {**base, **resolved, "name": name}
        try:
            zoo[name] = ModelSpec.model_validate(entry)
        except ValidationError as e:
            err = e.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            raise BenchError(
                f"{files[name]}: models.{name}.{field}: {pydantic_reason(err)}"
            ) from None
    _check_lineage(zoo, files)
    return zoo


def _check_lineage(zoo: dict[str, ModelSpec], files: dict[str, Path]) -> None:
    """A lineage is a chain to a root: a model naming itself, or a loop, is refused here (every
    walk of it stops at a visited name too)."""
    for name in zoo:
        seen = [name]
        current = zoo[name]
        while current.lineage is not None and current.lineage.parent in zoo:
            parent = current.lineage.parent
            if parent in seen:
                raise BenchError(
                    f"{files[name]}: models.{name}.lineage.parent: cycle through "
                    f"{' -> '.join([*seen, parent])}; a lineage ends at a base model"
                )
            seen.append(parent)
            current = zoo[parent]


def lineage_chain(name: str) -> list[str]:
    """Zoo names from the lineage root to ``name`` (the root is the first name without a
    parent in the zoo); a visited name ends the walk, whatever the file says."""
    chain = [name]
    while (spec := get_model(chain[0])).lineage is not None:
        parent = spec.lineage.parent
        if parent in chain:
            raise BenchError(f"model '{name}': lineage cycle through {' -> '.join(chain)}")
        chain.insert(0, parent)
    return chain


# A zoo name is a cache directory's name (and a row label): no path parts, no markup.
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")


def _check_name(name: Any, file: Path) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise BenchError(
            f"{file}: models.{name!r}: a model name is lowercase letters, digits, '.', '-' "
            "and '_' (no '/', '..', spaces or markup); rename the entry"
        )


def _inside(path: Path, root: Path) -> Path:
    """``path`` resolved, refused unless it is an entry of ``root`` (a build deletes what is there)."""
    resolved, top = path.resolve(), root.resolve()
    if resolved.parent != top:
        raise BenchError(
            f"model cache path {path} is outside {root}; refusing to build or delete there"
        )
    return resolved


def get_model(name: str) -> ModelSpec:
    """A zoo entry (by name or hub id, ``@rev`` pins a revision); a local directory or an
    ``org/name`` hub id the zoo lacks becomes an ad-hoc entry."""
    zoo = load_zoo()
    if not isinstance(name, str) or not name.strip():  # '' is Path('.'): the working directory
        raise BenchError("model name is empty; name a zoo model, a hub id or a model directory")
    if name in zoo:
        return _with_cached_revision(zoo[name])
    if Path(name).expanduser().is_dir():
        path = Path(name).expanduser().resolve()
        return ModelSpec(name=path.name, source="local", path=str(path))
    base, at, rev = name.partition("@")
    if at and not rev:
        raise BenchError(
            f"model '{name}': empty revision after '@'; write ORG/NAME@COMMIT or drop the '@'"
        )
    spec = zoo.get(base) or _by_hub(zoo).get(base.lower())
    if spec is not None:
        if rev and rev != spec.revision:  # another revision is other weights: its own row
            spec = spec.model_copy(update={"name": f"{spec.name}@{rev}", "revision": rev})
        return _with_cached_revision(spec)
    if base.count("/") == 1 and not base.startswith((".", "/")):
        label = base.replace("/", "--").lower() + (f"@{rev}" if rev else "")
        return _with_cached_revision(ModelSpec(name=label, hub=base, revision=rev or None))
    raise BenchError(
        f"unknown model '{name}'{closest(name, zoo)}: list them with `bench models`, "
        f"or add an entry to {ZOO_FILE.name} (or a file named by $BENCH_MODELS)"
    )


def _by_hub(zoo: dict[str, ModelSpec]) -> dict[str, ModelSpec]:
    """Zoo entries by lower-cased hub id; the first entry naming a hub wins."""
    index: dict[str, ModelSpec] = {}
    for spec in zoo.values():
        if spec.hub and spec.source == "hub":
            index.setdefault(spec.hub.lower(), spec)
    return index


def _hub_cache() -> Path:
    # read from the environment on every call: huggingface_hub fixes its constants at import
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = (
        os.environ.get("HF_HOME")
        or Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "huggingface"
    )
    return Path(home).expanduser() / "hub"


def cached_revision(hub: str, revision: str | None = None) -> str | None:
    """The commit hash the HF cache holds for ``hub`` at ``revision`` (a branch or tag,
    default main, or a commit); None when that snapshot is not cached."""
    repo = _hub_cache() / ("models--" + hub.replace("/", "--"))
    ref = revision or "main"
    if re.fullmatch(r"[0-9a-f]{40}", ref):
        return ref if (repo / "snapshots" / ref).is_dir() else None
    ref_file = repo / "refs" / ref
    if not ref_file.is_file():
        return None
    commit = ref_file.read_text().strip()
    return commit if commit and (repo / "snapshots" / commit).is_dir() else None


def _with_cached_revision(spec: ModelSpec) -> ModelSpec:
    """A hub spec with the commit of its cached snapshot as revision (unchanged if uncached)."""
    if spec.source != "hub" or not spec.hub:
        return spec
    commit = cached_revision(spec.hub, spec.revision)
    return (
        spec
        if commit is None or commit == spec.revision
        else spec.model_copy(update={"revision": commit})
    )


def model_identity(spec: ModelSpec) -> str:
    """What determines the weights, for cell keys: stable across machines, no download needed."""
    from harness import _build

    if spec.source == "bundled":
        return f"bundled:{_build.BUNDLED_IDENTITY}"
    if spec.source == "tiny":
        return f"tiny:{spec.architecture}:{_build.tiny_identity(spec)}"
    if spec.source == "local":
        return f"local:{_dir_fingerprint(Path(spec.path or ''))}"
    # the cached snapshot's commit when there is one: the key names the weights actually used
    revision = cached_revision(spec.hub or "", spec.revision) or spec.revision or "main"
    return f"hub:{spec.hub}@{revision}"


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
        return Path(
            snapshot_download(
                spec.hub, revision=spec.revision, local_files_only=True, cache_dir=_hub_cache()
            )
        )
    except (LocalEntryNotFoundError, FileNotFoundError, OSError):
        return None


def _writable(path: Path) -> bool:
    while not path.exists() and path != path.parent:
        path = path.parent
    return os.access(path, os.W_OK)


def _local_dir(path: Path) -> Path:
    """A local model directory, its config.json checked here: transformers' error for a broken
    one is a traceback far from the user's path."""
    config = path / "config.json"
    try:
        data = json.loads(config.read_text())
    except FileNotFoundError:
        raise BenchError(
            f"{path}: no config.json; a model directory is what save_pretrained writes"
        ) from None
    except (OSError, ValueError) as e:
        raise BenchError(
            f"{config}: not valid JSON ({str(e).splitlines()[0]}); re-save the model"
        ) from None
    if not isinstance(data, dict):
        raise BenchError(
            f"{config}: not a JSON object; not a transformers model config, re-save the model"
        )
    return path


def build_tiny(spec: ModelSpec, out: Path, tokenizer_dir: Path) -> None:
    """Write a ``tiny-random-*`` zoo model (random weights from its config) into ``out``,
    with the tokenizer files of ``tokenizer_dir``: what ``materialize`` caches, for callers
    (the GPU lane) that build one in a folder of their own."""
    from harness import _build

    _build.build_tiny(spec, out, tokenizer_dir)


def materialize(name: str) -> Path:
    """A local HF model directory for ``name``, building or downloading it once."""
    spec = get_model(name)
    if spec.source == "local":
        return _local_dir(Path(spec.path or ""))
    if spec.source in ("bundled", "tiny"):
        from harness import _build

        root = cache_dir() / "models"
        target = _inside(root / spec.name, root)
        if not (target / COMPLETE).exists() and not _writable(cache_dir()):
            # e.g. an Apptainer image's read-only cache: build into the user's cache instead
            root = Path.home() / ".cache" / "bench" / "models"
            target = _inside(root / spec.name, root)
        if not (target / COMPLETE).exists():
            if spec.source == "bundled":
                downloads = cache_dir() / "downloads"
                _build.atomic_build(
                    target,
                    lambda tmp: _build.build_bundled(spec, tmp, downloads),
                    COMPLETE,
                    root=root,
                )
            else:  # tiny models borrow the bundled model's tokenizer
                tokenizer = materialize("smollm2-135m-instruct")
                _build.atomic_build(
                    target, lambda tmp: _build.build_tiny(spec, tmp, tokenizer), COMPLETE, root=root
                )
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

    return Path(snapshot_download(spec.hub, revision=spec.revision, cache_dir=_hub_cache()))


def planner_facts(model: str) -> Path | dict[str, Any]:
    """What the memory planner sizes ``model`` by (a directory, or a zoo name): an existing
    model directory, a bundled/tiny model's built directory (exact), else the zoo's numbers,
    so a hub model is planned before anything is downloaded."""
    if Path(model).expanduser().joinpath("config.json").exists():
        return Path(model).expanduser()
    spec = get_model(model)
    if spec.source != "hub" and is_materialized(model):
        return materialize(model)
    facts = {
        "name": spec.name,
        "params": spec.params,
        "hidden_size": spec.hidden_size,
        "num_layers": spec.num_layers,
        "vocab_size": spec.vocab_size,
    }
    if spec.num_experts:
        facts |= {"num_experts": spec.num_experts, "experts_per_token": spec.experts_per_token or 1}
    if spec.num_attention_heads and spec.num_key_value_heads:
        facts["kv_ratio"] = spec.num_key_value_heads / spec.num_attention_heads
    missing = [k for k in ("params", "hidden_size", "num_layers") if not facts[k]]
    if missing:
        raise BenchError(
            f"harness/models.yaml: models.{spec.name} lacks {', '.join(missing)}; add them so the planner can size it"
        )
    return facts
