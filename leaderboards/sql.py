"""The store's tables and views, as SQL kept in one place.

Tables mirror the files (one row per record, per record × task × metric, per sample);
views are the leaderboard. A stage is the method path (``base``, ``distill``,
``distill+grpo``); its depth is the number of methods and its parent drops the last one.

Version rule: a leaderboard column is a task *at one version* (``label`` =
``task@vN``) measured with one set of eval settings (``settings_key``: limit, shots,
template, sampling, seed, packages; the label gains the settings when a task has
several). A row is one set of weights (``weights_key``: a trained stage's key, or a
zoo model's identity) labelled by model and stage; parents and bases are found by
weights key, not by stage names, so a published stage is a row of its own beside the
base it descends from. Nothing is hidden: the latest record wins only among records of
the *same* cell key (a ``--force`` recompute).
"""

from __future__ import annotations

from leaderboards.columns import FAILURE_COLUMNS, RECORD_COLUMNS, create_table

__all__ = ["TABLES", "VIEWS", "create_schema", "pair_counts_sql"]

# records and failures: from their one column list (leaderboards.columns)
TABLES = (
    create_table("records", RECORD_COLUMNS)
    + create_table("failures", FAILURE_COLUMNS)
    + """
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
    samples_file VARCHAR,
    settings_key VARCHAR,
    settings VARCHAR,
    truncated DOUBLE,
    score_completed DOUBLE,
    looping DOUBLE
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
    meta VARCHAR,
    gen_tokens BIGINT,
    truncated BOOLEAN
);
-- Every logged step of a train cell (its stage dir's log_history.json), one row per metric:
-- loss, grad_norm, learning_rate and each method's own (GRPO's reward, reward_std,
-- rewards/<f>/mean|std, kl, completions/mean_length, clip_ratio/*; distill's kl and nll;
-- DPO's rewards/chosen|rejected|margins|accuracies).
CREATE TABLE IF NOT EXISTS train_curves (
    cell_key VARCHAR NOT NULL,
    step BIGINT NOT NULL,
    metric VARCHAR NOT NULL,
    value DOUBLE
);
-- Tulu 3's 8-gram rule per eval cell x task: a doc is contaminated when more than half of its
-- 8-grams occur in the training rows of the cell's lineage (every stage's train_rows file).
CREATE TABLE IF NOT EXISTS contamination (
    cell_key VARCHAR NOT NULL,
    task VARCHAR NOT NULL,
    n_docs BIGINT NOT NULL,
    n_contaminated BIGINT NOT NULL,
    share DOUBLE NOT NULL,
    train_cells VARCHAR[] NOT NULL
);
"""
)

_LABEL = (
    "task || '@' || CASE WHEN starts_with(task_version, 'v') THEN task_version "
    "ELSE 'v' || task_version END"
)

VIEWS = {
    # Cells whose last run failed and that have no record since: the board lists them.
    "failed_cells": """
        SELECT f.* FROM failures f
        WHERE NOT EXISTS (SELECT 1 FROM records r WHERE r.cell_key = f.cell_key AND r.kind = f.kind)
    """,
    # Primary metric of every eval cell × task, with the record's identity columns.
    "primary_results": """
        SELECT r.model_id, r.stage, r.grid, r.recipe, r.cell_key, r.finished_at, r.seed,
               r.backend, r.weights_key, r.parent_weights, r.base_weights, r.parent_stage,
               t.task, t.task_version, t.metric, t.value, t.stderr,
               t.stderr_source, t.n, t.higher_is_better, t.n_shot, t.chat_template,
               t.settings_key, t.settings, t.truncated, t.score_completed, t.looping
        FROM task_results t JOIN records r USING (cell_key, kind)
        WHERE t.kind = 'eval' AND t.is_primary
    """,
    # One row per weights × task@version × settings (latest record of one key), with deltas
    # vs the lineage root and the parent row, found by weights key.
    "leaderboard_long": f"""
        WITH ranked AS (
            SELECT *, row_number() OVER (
                PARTITION BY cell_key, task, task_version
                ORDER BY finished_at DESC) AS rn
            FROM primary_results
        ), latest AS (
            SELECT *, count(*) OVER (PARTITION BY weights_key, task, task_version, settings_key) AS n_same
            FROM ranked WHERE rn = 1
        ), one AS (
            -- Records without lineage (schema v1) can share a row and column under two keys:
            -- split them by key instead of letting one hide the other.
            SELECT * REPLACE (CASE WHEN n_same > 1 THEN weights_key || '#' || cell_key
                                   ELSE weights_key END AS weights_key)
            FROM latest
        ), variants AS (
            SELECT task, task_version, count(DISTINCT settings_key) AS n_settings
            FROM one GROUP BY task, task_version
        ), cells AS (
            SELECT o.model_id, o.stage, coalesce(len(o.recipe), 0) AS depth, o.parent_stage,
                   o.weights_key, o.parent_weights, o.base_weights,
                   o.task, o.task_version, o.settings_key, o.settings,
                   {_LABEL} || CASE WHEN v.n_settings > 1 THEN ' [' || coalesce(o.settings, o.settings_key) || ']'
                                    ELSE '' END AS label,
                   o.metric, o.higher_is_better, o.value, o.stderr, o.stderr_source, o.n,
                   o.truncated, o.score_completed, o.looping, o.cell_key, o.finished_at
            FROM one o JOIN variants v USING (task, task_version)
        )
        SELECT c.*,
               b.cell_key AS base_cell, b.value AS base_value, c.value - b.value AS delta_base,
               p.cell_key AS parent_cell, p.value AS parent_value,
               c.value - p.value AS delta_parent
        FROM cells c
        LEFT JOIN cells b ON c.weights_key <> c.base_weights AND b.weights_key = c.base_weights
            AND b.label = c.label
        LEFT JOIN cells p ON p.weights_key = c.parent_weights AND p.label = c.label
    """,
    # The (cell, reference, task) pairs whose significance the leaderboard marks.
    "leaderboard_pairs": """
        SELECT cell_key AS cell, base_cell AS ref, task FROM leaderboard_long
        WHERE base_cell IS NOT NULL
        UNION
        SELECT cell_key, parent_cell, task FROM leaderboard_long
        WHERE parent_cell IS NOT NULL AND parent_weights <> base_weights
    """,
    # Rows model × stage; columns are keys of the maps (task@version). Renderers pivot
    # these into real columns (a data-driven PIVOT cannot live in a DuckDB view).
    "leaderboard": """
        SELECT model_id, stage, weights_key, any_value(depth) AS depth, any_value(parent_stage) AS parent_stage,
               map_from_entries(list(struct_pack(k := label, v := value))) AS value,
               map_from_entries(list(struct_pack(k := label, v := stderr))) AS stderr,
               map_from_entries(list(struct_pack(k := label, v := delta_base))) AS delta_base,
               map_from_entries(list(struct_pack(k := label, v := delta_parent))) AS delta_parent
        FROM leaderboard_long
        GROUP BY model_id, stage, weights_key
        ORDER BY model_id, depth, stage, weights_key
    """,
}


def pair_counts_sql(pairs: str) -> str:
    """Paired counts for the (cell, ref, task) rows of relation ``pairs``; 0 when none shared.

    Each (cell_key, task) a pair names gets a small integer id, and a sample is joined to its
    reference's sample on one HUGEINT key ``id << 64 + doc_id`` (injective for any BIGINT
    doc_id). Joining on strings took 4x longer, and with separate conditions on the reference's
    key and on doc_id the optimiser may join every sample with every other of the same doc_id
    first (2 billion rows at 1,000 cells).
    """
    return f"""
        WITH p AS (SELECT DISTINCT cell, ref, task FROM {pairs}),
        ids AS (
            SELECT cell_key, task, (row_number() OVER ())::HUGEINT << 64 AS id
            FROM (SELECT cell AS cell_key, task FROM p UNION SELECT ref, task FROM p)
        ),
        s AS (
            SELECT i.id AS cell_id, i.id + s.doc_id AS k, s.doc_id, s.correct
            FROM samples s JOIN ids i USING (cell_key, task)
        ),
        q AS (
            SELECT p.cell, p.ref, p.task, a.id AS a, b.id AS b FROM p
            JOIN ids a ON a.cell_key = p.cell AND a.task = p.task
            JOIN ids b ON b.cell_key = p.ref AND b.task = p.task
        ),
        c AS (
            SELECT q.a, q.b, count(*) AS n_shared,
                   count(*) FILTER (WHERE x.correct AND NOT r.correct) AS wins,
                   count(*) FILTER (WHERE r.correct AND NOT x.correct) AS losses
            FROM q JOIN s x ON x.cell_id = q.a JOIN s r ON r.k = q.b + x.doc_id
            GROUP BY q.a, q.b
        )
        SELECT q.cell, q.ref, q.task, coalesce(c.n_shared, 0) AS n_shared,
               coalesce(c.wins, 0) AS wins, coalesce(c.losses, 0) AS losses
        FROM q LEFT JOIN c USING (a, b)
    """


# Bumped when a table's columns change. The store is a cache of the files under results/, so
# a store of another version is dropped and re-ingested rather than migrated.
STORE_VERSION = 7  # 4: train_curves, contamination; samples keep gen_tokens and truncated;
# 5: records' peak_rss_bytes and peak_cuda_bytes; 6: records' engine_peak_rss_bytes, engine_gpu_bytes;
# 7: failures, records' world_size
_CACHED_TABLES = (
    "records",
    "failures",
    "task_results",
    "paired_counts",
    "samples",
    "train_curves",
    "contamination",
)


def _store_version(con) -> int | None:
    try:
        return con.execute("SELECT max(version) FROM store_meta").fetchall()[0][0]
    except Exception:  # noqa: BLE001 - no store_meta table: a store from before versioning, or a new one
        return None


def create_schema(con) -> None:
    """Create tables (if absent) and (re)create views; safe to call on every connection."""
    if _store_version(con) != STORE_VERSION:
        for view in VIEWS:
            con.execute(f"DROP VIEW IF EXISTS {view}")
        for table in _CACHED_TABLES:
            con.execute(f"DROP TABLE IF EXISTS {table}")
        con.execute("CREATE OR REPLACE TABLE store_meta (version INTEGER)")
        con.execute("INSERT INTO store_meta VALUES (?)", [STORE_VERSION])
    con.execute(TABLES)
    for name, body in VIEWS.items():
        con.execute(f"CREATE OR REPLACE VIEW {name} AS {body}")
