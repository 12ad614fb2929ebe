"""The run record: one immutable, schema-versioned JSON document per finished cell.

Records are the truth; leaderboards are queries over them. ``schema_version`` is bumped
whenever a field changes meaning; :func:`load_record` upgrades every older version so
old results keep loading.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bench_core.errors import BenchError, RecordWarning
from bench_core.names import check_cell_key, check_relative, check_task_name, strip_control

__all__ = [
    "SCHEMA_VERSION",
    "MetricValue",
    "TaskResult",
    "Provenance",
    "TrainSummary",
    "RunRecord",
    "RecordHead",
    "write_record",
    "load_record",
    "parse_record",
    "record_path",
    "read_records",
    "RecordWarning",
    "stage_lineage",
]

SCHEMA_VERSION = 4


class MetricValue(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: float
    stderr: float | None = None
    n: int | None = None


class TaskResult(BaseModel):
    """One task of an eval cell, with the prompt format that makes results comparable."""

    model_config = ConfigDict(extra="forbid")
    name: str
    version: str
    primary_metric: str
    higher_is_better: bool = True
    metrics: dict[str, MetricValue]
    n_shot: int = 0
    chat_template: bool = True
    limit: int | None = None
    samples_file: str | None = None  # Parquet of per-sample rows, relative to the results dir
    repeats_file: str | None = (
        None  # with repeats > 1: every sample of every prompt (samples_file: the first)
    )
    settings: str | None = (
        None  # short label of the eval settings (limit, shots, template, sampling)
    )
    truncated: float | None = None  # share of samples that hit the generation cap
    score_completed: float | None = None  # primary metric over samples that did not hit the cap
    looping: float | None = (
        None  # share of samples that end in a degenerate loop (leaderboards.behavior.looping)
    )

    # A task name becomes a file name (views/<task>.md), a samples path one to open: a record
    # naming '../../x' or another results folder's Parquet is refused when parsed.
    _name = field_validator("name")(lambda v: check_task_name(v))
    _files = field_validator("samples_file", "repeats_file")(
        lambda v, info: v if v is None else check_relative(v, info.field_name)
    )
    _labels = field_validator("settings", "primary_metric")(lambda v: strip_control(v))


class Provenance(BaseModel):
    model_config = ConfigDict(extra="forbid")
    git_commit: str | None = None
    git_dirty: bool | None = None
    packages: dict[str, str] = Field(default_factory=dict)
    container_image: str | None = None
    container_digest: str | None = None
    hostname: str | None = None


class TrainSummary(BaseModel):
    """What a train cell's training did, from its stage manifest (``trainers.manifest``). Its
    time, throughput and peak memory are the record's own fields (``wall_s``, ``tokens_per_s``,
    ``peak_rss_bytes``, ``peak_cuda_bytes``); None: a record upgraded from schema 3 or older,
    which did not keep it."""

    model_config = ConfigDict(extra="forbid")
    steps: int  # optimizer steps taken
    stopped_early: bool | None = None  # fewer steps than max_steps (early stopping)
    final_loss: float | None = None  # the last logged training loss
    tokens: int | None = None  # training tokens processed, a resumed run's earlier part included
    world_size: int = 1  # processes it trained in (GPUs, or CPU ranks)
    resumed_from: str | None = None  # the checkpoint a preempted stage resumed from
    planned_memory_gb: float | None = None  # the planner's estimate per device
    peak_memory_gb: dict[str, float] = Field(default_factory=dict)  # after_load, after_train


class RunRecord(BaseModel):
    """A finished cell. ``kind='train'`` records a stage, ``kind='eval'`` its scores."""

    model_config = ConfigDict(extra="forbid")
    schema_version: Literal[4] = SCHEMA_VERSION
    kind: Literal["train", "eval"]
    cell_key: str
    grid: str | None = None
    model_id: str
    model_revision: str | None = None
    recipe: list[str] = Field(default_factory=list)
    stage: str = "base"
    parent_key: str | None = None  # train: the parent stage's key; eval: the stage's train key
    # What the key was computed from (harness.keys): a changed field is named by `bench grid show`.
    inputs: dict[str, Any] = Field(default_factory=dict)
    # Lineage by weights, not by stage names: what is evaluated, its parent row and its root.
    weights_key: str | None = None
    parent_weights: str | None = None
    base_weights: str | None = None
    parent_stage: str | None = None
    # bench rescore: the eval record whose stored completions this one scored again (no generation).
    rescored_from: str | None = None
    method_configs: dict[str, dict[str, Any]] = Field(default_factory=dict)
    checkpoint: str | None = None
    tasks: list[TaskResult] = Field(default_factory=list)
    backend: str | None = None
    dtype: str | None = None
    target: str | None = None
    seed: int = 0
    wall_s: float | None = None
    load_s: float | None = None  # model load, outside tokens_per_s
    tokens_per_s: float | None = None  # eval: generated tokens per second of generation
    # The cell's own peaks (bench_core.memory): host resident set, and CUDA max-allocated on the
    # busiest device (None: the cell used no GPU).
    peak_rss_bytes: int | None = None
    peak_cuda_bytes: int | None = None
    # An eval whose engine runs in processes of its own (vLLM) holds its memory there, and the two
    # fields above are the harness process's alone: engine_peak_rss_bytes is the engine processes'
    # peak host RSS (summed), engine_gpu_bytes what the engine was given on each GPU (vLLM's
    # gpu_memory_utilization of the card), which it holds from start to end. None: no engine,
    # or a record from before these fields.
    engine_peak_rss_bytes: int | None = None
    engine_gpu_bytes: int | None = None
    # schema <= 2: the harness process's peak (GPU reserved, or host RSS) when the record was
    # written, which may be an earlier cell's; not comparable with the fields above
    process_peak_bytes: int | None = None
    train: TrainSummary | None = None  # train records: what the training did
    provenance: Provenance = Field(default_factory=Provenance)
    started_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    # The key names the record's file (records/<kind>-<key>.json) and its samples folder.
    _key = field_validator("cell_key")(lambda v: check_cell_key(v))
    _keys = field_validator("parent_key", "rescored_from")(
        lambda v: v if v is None else check_cell_key(v)
    )
    # Shown on every board: no control characters (a newline breaks a Markdown row).
    _text = field_validator(
        "grid",
        "model_id",
        "model_revision",
        "stage",
        "weights_key",
        "parent_weights",
        "base_weights",
        "parent_stage",
        "backend",
        "dtype",
        "target",
    )(lambda v: strip_control(v))
    _recipe = field_validator("recipe")(lambda v: [strip_control(x) for x in v])


class RecordHead(BaseModel):
    """A record's identity and key payload, parsed without the rest (``bench grid show`` reads
    every record of a results folder to tell a changed cell from a new one). These fields mean
    the same in every schema version, so no upgrade step applies; :func:`load_record` checks
    the whole record."""

    model_config = ConfigDict(extra="ignore")
    kind: Literal["train", "eval"]
    cell_key: str
    model_id: str
    stage: str = "base"
    inputs: dict[str, Any] = Field(default_factory=dict)
    finished_at: datetime = datetime.min.replace(tzinfo=UTC)

    # a hand-written time without a zone is UTC, so that any two compare
    _utc = field_validator("finished_at")(lambda v: v if v.tzinfo else v.replace(tzinfo=UTC))

    @classmethod
    def read(cls, path: str | Path) -> RecordHead:
        return cls.model_validate_json(Path(path).read_bytes())


def record_path(results_dir: str | Path, record: RunRecord) -> Path:
    return Path(results_dir) / "records" / f"{record.kind}-{record.cell_key}.json"


def write_record(record: RunRecord, results_dir: str | Path) -> Path:
    """Write atomically (temp file + rename in the same directory): readers never see half a record."""
    path = record_path(results_dir, record)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(record.model_dump_json(indent=2))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def stage_lineage(model: str, stage: str, prefix: str = "") -> dict[str, str | None]:
    """Lineage by stage names, for records that carry none (schema v1, synthetic cells): a row is
    (model, stage) and its parent drops the last method of the stage."""
    parent = None if stage == "base" else stage.rsplit("+", 1)[0] if "+" in stage else "base"
    return {
        "weights_key": f"{prefix}{model}/{stage}",
        "parent_weights": f"{prefix}{model}/{parent}" if parent else None,
        "base_weights": f"{prefix}{model}/base",
        "parent_stage": parent,
    }


def _v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(data.get("model_id"), str):
        raise BenchError("field 'model_id': a schema 1 record needs it")
    return {
        **data,
        "schema_version": 2,
        **stage_lineage(data["model_id"], data.get("stage", "base"), "v1:"),
    }


def _v2_to_v3(data: dict[str, Any]) -> dict[str, Any]:
    data = {**data, "schema_version": 3}
    data["process_peak_bytes"] = data.pop("peak_memory_bytes", None)
    return data


def _v3_to_v4(data: dict[str, Any]) -> dict[str, Any]:
    """``train_metrics`` (every numeric field of the stage manifest, as floats) becomes the typed
    ``train`` summary; what it never held (stopped_early, resumed_from) stays unknown."""
    data = {**data, "schema_version": 4}
    metrics = data.pop("train_metrics", None) or {}
    if data.get("kind") == "train" and isinstance(metrics.get("steps"), int | float):
        whole = {k: int(metrics[k]) for k in ("steps", "tokens", "world_size") if k in metrics}
        data["train"] = {
            **whole,
            **{k: metrics[k] for k in ("final_loss", "planned_memory_gb") if k in metrics},
        }
    return data


_UPGRADES = {
    1: _v1_to_v2,
    2: _v2_to_v3,
    3: _v3_to_v4,
}  # each schema version adds one step here (never edit old steps)


def _upgrade(data: dict[str, Any]) -> dict[str, Any]:
    while data.get("schema_version", 1) in _UPGRADES:
        data = _UPGRADES[data.get("schema_version", 1)](data)
    return data


def load_record(path: str | Path) -> RunRecord:
    return parse_record(Path(path).read_bytes())


def parse_record(data: bytes | str) -> RunRecord:
    """A record from a file's bytes: ingest reads each file once, to hash it and to parse it.

    Anything but a record (``{}``, ``[]``, ``null``, JSON nested past the parser's depth) is a
    ValueError (a BenchError, or pydantic's ValidationError), the error a reader skips a file on."""
    try:
        data = json.loads(data)
    except RecursionError:
        raise BenchError("JSON nested too deeply; not a run record") from None
    if not isinstance(data, dict):
        raise BenchError(f"a run record is a JSON object, not {type(data).__name__}")
    return RunRecord.model_validate(_upgrade(data))


def read_records(paths: Iterable[str | Path]) -> Iterator[tuple[Path, RunRecord]]:
    """(file, record) for each readable record; any other is skipped with one warning line,
    as ingest skips it: one edited record never takes a whole command down."""
    for path in paths:
        try:
            yield Path(path), load_record(path)
        except (OSError, ValueError) as e:  # JSON, UTF-8 and pydantic errors are ValueErrors
            warnings.warn(f"{path}: record skipped: {one_line(e)}", RecordWarning, stacklevel=2)


def one_line(e: Exception) -> str:
    """A parse error as one line (pydantic's first error, with its field)."""
    from pydantic import ValidationError

    if isinstance(e, ValidationError):
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"]) or "<root>"
        msg = str(err["msg"]).removeprefix("Value error, ")
        return f"field '{loc}': {msg} ({e.error_count()} error(s))"
    return str(e).splitlines()[0] if str(e) else type(e).__name__
