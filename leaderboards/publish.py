"""A static site of the board (``bench leaderboard --publish DIR``) that a CI job can publish as is.

The folder holds ``index.html`` (the board with its plots and analysis panels), each view as
Markdown, LaTeX (booktabs) and CSV under ``views/`` (the whole board, then one view per task),
every record as JSON under ``records/`` plus ``records.json`` (all of them, one list), and a
provenance footer on every page: bench version, git commit, container digests, date.
"""

from __future__ import annotations

import html
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from bench_core.errors import BenchError
from leaderboards.board import build_board
from leaderboards.record import read_records
from leaderboards.rendering import render
from leaderboards.sample_page import SAMPLES_DIR, write_sample_pages
from leaderboards.store import connect, ingest, writable_store

__all__ = ["MARKER", "VIEW_FORMATS", "check_site_dir", "provenance_lines", "publish"]

VIEW_FORMATS = {"md": "md", "latex": "tex", "csv": "csv"}
MARKER = ".bench-site"  # in every folder publish made: the only kind it refreshes


def check_site_dir(results_dir: Path, out: Path) -> None:
    """Refuse a folder publish would destroy something in: the results folder itself, a folder
    holding it, one inside its records or samples, or a non-empty folder it did not make."""
    res, site = results_dir.resolve(), out.resolve()
    if site == res or res.is_relative_to(site):
        raise BenchError(
            f"--publish {out}: is or holds the results folder {results_dir}; "
            "publish to a folder of its own, e.g. site/"
        )
    for sub in ("records", "samples", "checkpoints", "analysis", "failures"):
        if site.is_relative_to(res / sub):
            raise BenchError(
                f"--publish {out}: is inside {results_dir}/{sub}; publish to a folder of its own"
            )
    if site.exists() and not site.is_dir():
        raise BenchError(f"--publish {out}: is a file; name a folder")
    if site.is_dir() and any(site.iterdir()) and not (site / MARKER).is_file():
        raise BenchError(
            f"--publish {out}: not empty and not made by `bench leaderboard --publish` "
            f"(no {MARKER}); name a new or empty folder"
        )


def _bench_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bench")
    except PackageNotFoundError:
        return "unknown"


def provenance_lines(records: list, now: datetime | None = None) -> list[str]:
    """What produced the site: bench version and commit, the records' commits and container digests."""
    from bench_core.gitinfo import git_state

    commit, dirty = git_state()
    commits = sorted({r.provenance.git_commit[:12] for r in records if r.provenance.git_commit})
    digests = sorted(
        {
            r.provenance.container_digest or r.provenance.container_image
            for r in records
            if r.provenance.container_digest or r.provenance.container_image
        }
    )
    return [
        f"bench {_bench_version()}, published from commit {(commit or 'unknown')[:12]}{' (dirty)' if dirty else ''}",
        f"records from commits: {', '.join(commits) or 'unknown'}",
        f"container digests: {', '.join(digests) or 'none (run outside a container)'}",
        f"published {(now or datetime.now(UTC)).strftime('%Y-%m-%d %H:%M UTC')} from {len(records)} records",
    ]


def _views(con) -> list[tuple[str, list[str] | None]]:
    """(file stem, task filter): the whole board, then one view per task."""
    tasks = [
        r[0]
        for r in con.execute("SELECT DISTINCT task FROM leaderboard_long ORDER BY task").fetchall()
    ]
    return [("leaderboard", None)] + [(t, [t]) for t in tasks]


def publish(
    results_dir: str | Path, out_dir: str | Path, db_path: str | Path | None = None
) -> list[Path]:
    """Write the site; returns the files written (the folder is refreshed, never appended to)."""
    results_dir, out = Path(results_dir), Path(out_dir)
    check_site_dir(results_dir, out)
    with writable_store(results_dir, db_path) as db:  # a read-only results folder: a copy
        return _publish(results_dir, out, db)


def _publish(results_dir: Path, out: Path, db: Path) -> list[Path]:
    ingest(results_dir, db)
    paths = sorted((results_dir / "records").glob("*.json"))
    loaded = list(read_records(paths))
    paths, records = [p for p, _ in loaded], [rec for _, rec in loaded]
    footer = provenance_lines(records)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("made by `bench leaderboard --publish`; it refreshes this folder\n")
    for sub in ("views", "records", SAMPLES_DIR):
        shutil.rmtree(out / sub, ignore_errors=True)
    (out / "views").mkdir(parents=True, exist_ok=True)
    (out / "records").mkdir(parents=True, exist_ok=True)
    written = []
    con = connect(db, read_only=True)
    try:
        page = render(con, "html")
        # the board links each cell to its sample page
        samples = write_sample_pages(con, build_board(con), out / SAMPLES_DIR, "../index.html")
        for stem, tasks in _views(con):
            for fmt, ext in VIEW_FORMATS.items():
                text = render(con, fmt, tasks=tasks)
                if fmt == "md":
                    text += "\n" + "\n".join(f"- {line}" for line in footer) + "\n"
                elif fmt == "latex":
                    text += "".join(f"% {line}\n" for line in footer)
                written.append(_write(out / "views" / f"{stem}.{ext}", text))
    finally:
        con.close()
    links = "".join(
        f'<a href="views/{html.escape(quote(p.name))}">{html.escape(p.name)}</a> ' for p in written
    )
    foot = "".join(f"<div>{html.escape(line)}</div>" for line in footer)
    extra = (
        f'<footer class="provenance"><h2>Downloads</h2><div>{links}<a href="records.json">records.json</a>'
        f"</div><h2>Provenance</h2>{foot}</footer>"
    )
    written.append(_write(out / "index.html", page.replace("</body>", extra + "</body>", 1)))
    written += samples
    for p in paths:
        shutil.copyfile(p, out / "records" / p.name)
        written.append(out / "records" / p.name)
    all_records = [json.loads(rec.model_dump_json()) for rec in records]
    written.append(_write(out / "records.json", json.dumps(all_records, indent=1) + "\n"))
    return written


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
