"""The store's tables and views, as SQL kept in one place.

Tables mirror the files (one row per record, per record × task × metric, per sample);
views are the leaderboard. A stage is the method path (``base``, ``distill``,
``distill+grpo``); its depth is the number of methods and its parent drops the last one.

Version rule: a leaderboard column is a task *at one version* (``label`` =
``task@vN``). Cells evaluated on different versions of a task land in different
columns, so deltas and paired tests only ever compare equal versions. When one
(model, stage) has several eval cells for the same task version, the most recently
finished one is shown.
"""

from __future__ import annotations

__all__ = ["TABLES", "VIEWS", "create_schema", "pair_counts_sql"]

TABLES = """
CREATE TABLE IF NOT EXISTS records (
    cell_key VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    schema_version INTEGER,
    grid VARCHAR,
    model_id VARCHAR NOT NULL,
    model_revision VARCHAR,
    recipe VARCHAR[],
    stage VARCHAR NOT NULL,
    parent_key VARCHAR,
    checkpoint VARCHAR,
    backend VARCHAR,
    dtype VARCHAR,
    target VARCHAR,
    seed BIGINT,
    wall_s DOUBLE,
    tokens_per_s DOUBLE,
    peak_memory_bytes BIGINT,
    git_commit VARCHAR,
    git_dirty BOOLEAN,
    container_image VARCHAR,
    container_digest VARCHAR,
    started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    source_path VARCHAR NOT NULL,
    content_hash VARCHAR NOT NULL,
    record_json VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS task_results (
    cell_key VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    task VARCHAR NOT NULL,
    task_version VARCHAR NOT NULL,
    metric VARCHAR NOT NULL,
    is_primary BOOLEAN NOT NULL,
    higher_is_better BOOLEAN,
    value DOUBLE,
    stderr DOUBLE,
    stderr_source VARCHAR,  -- 'record' (lm-eval's), 'samples' (computed at ingest) or NULL
    n BIGINT,
    n_shot INTEGER,
    chat_template BOOLEAN,
    "limit" BIGINT,
    samples_file VARCHAR
);
-- Cache of paired correctness counts (cell vs reference cell on one task, shared doc_ids),
-- filled at ingest for every pair the leaderboard shows; cells are immutable, so a pair's
-- counts only change when either cell is replaced, which deletes them.
CREATE TABLE IF NOT EXISTS paired_counts (
    cell VARCHAR NOT NULL,
    ref VARCHAR NOT NULL,
    task VARCHAR NOT NULL,
    n_shared BIGINT NOT NULL,
    wins BIGINT NOT NULL,    -- cell right, ref wrong
    losses BIGINT NOT NULL   -- cell wrong, ref right
);
CREATE TABLE IF NOT EXISTS samples (
    cell_key VARCHAR NOT NULL,
    task VARCHAR NOT NULL,
    doc_id BIGINT NOT NULL,
    score DOUBLE NOT NULL,
    correct BOOLEAN NOT NULL,
    answer VARCHAR,
    target VARCHAR,
    completion VARCHAR,
    prompt VARCHAR,
    logprob DOUBLE,
    meta VARCHAR
);
"""

_DEPTH = "CASE WHEN stage = 'base' THEN 0 ELSE len(string_split(stage, '+')) END"
_PARENT = (
    "CASE WHEN stage = 'base' THEN NULL "
    "WHEN contains(stage, '+') THEN regexp_replace(stage, '\\+[^+]*$', '') "
    "ELSE 'base' END"
)
_LABEL = (
    "task || '@' || CASE WHEN starts_with(task_version, 'v') THEN task_version "
    "ELSE 'v' || task_version END"
)

VIEWS = {
    # Primary metric of every eval cell × task, with the record's identity columns.
    "primary_results": """
        SELECT r.model_id, r.stage, r.grid, r.recipe, r.cell_key, r.finished_at, r.seed,
               r.backend, t.task, t.task_version, t.metric, t.value, t.stderr,
               t.stderr_source, t.n, t.higher_is_better, t.n_shot, t.chat_template
        FROM task_results t JOIN records r USING (cell_key, kind)
        WHERE t.kind = 'eval' AND t.is_primary
    """,
    # One row per model × stage × task@version (latest cell), with deltas vs base and parent.
    "leaderboard_long": f"""
        WITH ranked AS (
            SELECT *, row_number() OVER (
                PARTITION BY model_id, stage, task, task_version
                ORDER BY finished_at DESC, cell_key) AS rn
            FROM primary_results
        ), cells AS (
            SELECT model_id, stage, {_DEPTH} AS depth, {_PARENT} AS parent_stage,
                   task, task_version, {_LABEL} AS label, metric, higher_is_better,
                   value, stderr, stderr_source, n, cell_key, finished_at
            FROM ranked WHERE rn = 1
        )
        SELECT c.*,
               b.cell_key AS base_cell, b.value AS base_value, c.value - b.value AS delta_base,
               p.cell_key AS parent_cell, p.value AS parent_value,
               c.value - p.value AS delta_parent
        FROM cells c
        LEFT JOIN cells b ON c.stage <> 'base' AND b.stage = 'base'
            AND b.model_id = c.model_id AND b.task = c.task AND b.task_version = c.task_version
        LEFT JOIN cells p ON p.stage = c.parent_stage
            AND p.model_id = c.model_id AND p.task = c.task AND p.task_version = c.task_version
    """,
    # The (cell, reference, task) pairs whose significance the leaderboard marks.
    "leaderboard_pairs": """
        SELECT cell_key AS cell, base_cell AS ref, task FROM leaderboard_long
        WHERE base_cell IS NOT NULL
        UNION
        SELECT cell_key, parent_cell, task FROM leaderboard_long
        WHERE parent_cell IS NOT NULL AND parent_stage <> 'base'
    """,
    # Rows model × stage; columns are keys of the maps (task@version). Renderers pivot
    # these into real columns (a data-driven PIVOT cannot live in a DuckDB view).
    "leaderboard": """
        SELECT model_id, stage, any_value(depth) AS depth, any_value(parent_stage) AS parent_stage,
               map_from_entries(list(struct_pack(k := label, v := value))) AS value,
               map_from_entries(list(struct_pack(k := label, v := stderr))) AS stderr,
               map_from_entries(list(struct_pack(k := label, v := delta_base))) AS delta_base,
               map_from_entries(list(struct_pack(k := label, v := delta_parent))) AS delta_parent
        FROM leaderboard_long
        GROUP BY model_id, stage
        ORDER BY model_id, depth, stage
    """,
}


def pair_counts_sql(pairs: str) -> str:
    """Paired counts for the (cell, ref, task) rows of relation ``pairs``; 0 when none shared."""
    return f"""
        WITH p AS (SELECT DISTINCT cell, ref, task FROM {pairs}),
        c AS (
            SELECT p.cell, p.ref, p.task, count(*) AS n_shared,
                   count(*) FILTER (WHERE x.correct AND NOT r.correct) AS wins,
                   count(*) FILTER (WHERE r.correct AND NOT x.correct) AS losses
            FROM p
            JOIN samples x ON x.cell_key = p.cell AND x.task = p.task
            JOIN samples r ON r.cell_key = p.ref AND r.task = p.task AND r.doc_id = x.doc_id
            GROUP BY p.cell, p.ref, p.task
        )
        SELECT p.cell, p.ref, p.task, coalesce(c.n_shared, 0) AS n_shared,
               coalesce(c.wins, 0) AS wins, coalesce(c.losses, 0) AS losses
        FROM p LEFT JOIN c USING (cell, ref, task)
    """


def create_schema(con) -> None:
    """Create tables (if absent) and (re)create views; safe to call on every connection."""
    con.execute(TABLES)
    for name, body in VIEWS.items():
        con.execute(f"CREATE OR REPLACE VIEW {name} AS {body}")
