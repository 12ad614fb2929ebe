"""The board's sample pages: one static page per board cell (eval cell × task), self-contained.

The page embeds an index of its docs (doc_id, flip); the docs themselves are chunk scripts of
500 beside it, loaded when a page of docs (50) shows one, so a task of 10,000 docs loads as
fast as one of 50. ``#flipped``, ``#wins`` and
``#losses`` in the URL filter to the docs whose verdict changed against the parent stage;
``#doc=ID`` shows one doc. Text reaches the DOM only through ``textContent``: a completion is
never markup.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from html import escape
from pathlib import Path

from leaderboards.lineage_samples import TaskSamples, lineage_parents, lineage_samples, to_dict

__all__ = [
    "SAMPLES_DIR",
    "sample_page_name",
    "sample_page_files",
    "write_page",
    "write_sample_pages",
]

SAMPLES_DIR = "samples"  # beside the board's HTML file
PAGE_SIZE = 50
_SAFE = re.compile(r"[0-9A-Za-z_.-]{1,100}")


def sample_page_name(cell_key: str, task: str) -> str:
    """``<cell>.<task>.html``; a name that is not plain ASCII letters/digits is hashed instead."""
    stem = f"{cell_key}.{task}"
    if not _SAFE.fullmatch(stem) or stem.startswith("."):
        stem = hashlib.sha256(stem.encode()).hexdigest()[:32]
    return f"{stem}.html"


_CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d2330}
h1{font-size:20px;margin:0 0 4px}.meta{color:#5b6475;margin-bottom:10px}
nav a{margin-right:12px}nav a.on{font-weight:700;text-decoration:none;color:#1d2330}
.doc{border:1px solid #dfe3ea;margin:12px 0;padding:8px}.doc h2{font-size:15px;margin:0 0 6px}
.flip-win{color:#13795b}.flip-loss{color:#b42318}
pre{white-space:pre-wrap;margin:0;font:12px/1.35 ui-monospace,Menlo,Consolas,monospace}
.prompt{background:#f3f6fb;padding:6px;max-height:12em;overflow:auto}
.stages{display:grid;gap:8px;margin-top:6px}
.stage{border-left:3px solid #dfe3ea;padding-left:6px}.stage.right{border-color:#13795b}.stage.wrong{border-color:#b42318}
.stage h3{font-size:13px;margin:0}.flag{color:#b54708;font-size:12px;margin-left:6px}
.pager{margin:10px 0}.pager button{margin-right:6px}
"""

_JS = """
const data = JSON.parse(document.getElementById('data').textContent);
const PAGE = %d, CHUNK = %d, chunks = {}, waiting = {};
window.benchChunk = (i, docs) => { chunks[i] = docs; (waiting[i] || []).forEach(f => f()); };
function load(i) {  // a chunk of docs is a script beside the page: file:// allows it, fetch does not
  return new Promise(done => {
    if (chunks[i]) return done();
    if (!waiting[i]) {
      waiting[i] = [];
      const s = document.createElement('script'); s.src = data.chunk_dir + '/' + i + '.js';
      document.head.append(s);
    }
    waiting[i].push(done);
  });
}
const el = (tag, cls, text) => { const e = document.createElement(tag); if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = text; return e; };
function filtered() {  // positions into data.index: [doc_id, flip]
  const h = location.hash, all = data.index.map((d, i) => i);
  const m = h.match(/doc=(-?\\d+)/);
  if (m) return all.filter(i => data.index[i][0] === parseInt(m[1]));
  if (h.includes('wins')) return all.filter(i => data.index[i][1] === 1);
  if (h.includes('losses')) return all.filter(i => data.index[i][1] === -1);
  if (h.includes('flipped')) return all.filter(i => data.index[i][1] !== 0);
  return all;
}
function page() { const m = location.hash.match(/page=(\\d+)/); return m ? parseInt(m[1]) : 0; }
async function render() {
  const t0 = performance.now();
  const docs = filtered(), p = Math.min(page(), Math.max(0, Math.ceil(docs.length / PAGE) - 1));
  const shown = docs.slice(p * PAGE, (p + 1) * PAGE);
  await Promise.all([...new Set(shown.map(i => Math.floor(i / CHUNK)))].map(load));
  const root = document.getElementById('docs'); root.replaceChildren();
  document.getElementById('shown').textContent =
    `${docs.length} doc(s); page ${p + 1} of ${Math.max(1, Math.ceil(docs.length / PAGE))}`;
  for (const i of shown) {
    const d = chunks[Math.floor(i / CHUNK)][i %% CHUNK];
    const box = el('section', 'doc'); box.dataset.doc = d.doc_id; if (d.flip) box.dataset.flip = d.flip;
    const h = el('h2', null, `doc ${d.doc_id}`);
    if (d.flip) h.append(' ', el('span', d.flip === 'wrong → right' ? 'flip-win' : 'flip-loss', `[${d.flip}]`));
    box.append(h, el('div', 'meta', `target: ${d.target ?? '—'}`), el('pre', 'prompt', d.prompt));
    const grid = el('div', 'stages'); grid.style.gridTemplateColumns = `repeat(${data.stages.length}, 1fr)`;
    d.by_stage.forEach((s, k) => {
      const st = data.stages[k], c = el('div', 'stage' + (s ? (s.correct ? ' right' : ' wrong') : ''));
      c.dataset.stage = st.stage;
      const h3 = el('h3', null, `${st.stage} · ${s ? (s.correct ? '✓ right' : '✗ wrong') : 'not evaluated'}`);
      if (s && s.truncated) h3.append(el('span', 'flag', 'truncated'));
      if (s && s.looping) h3.append(el('span', 'flag', 'looping'));
      c.append(h3);
      if (s) c.append(el('div', 'meta', `answer: ${s.answer ?? '—'}`), el('pre', 'completion', s.completion ?? ''));
      grid.append(c);
    });
    box.append(grid); root.append(box);
  }
  const pager = document.getElementById('pager'); pager.replaceChildren();
  const base = location.hash.replace(/[&#]?page=\\d+/, '').replace(/^#/, '');
  for (const [label, q] of [['← previous', p - 1], ['next →', p + 1]]) {
    const b = el('button', null, label); b.disabled = q < 0 || q * PAGE >= docs.length;
    b.onclick = () => { location.hash = (base ? base + '&' : '') + 'page=' + q; }; pager.append(b);
  }
  document.querySelectorAll('nav a').forEach(a => a.classList.toggle('on',
    a.getAttribute('href') === '#' + (base || 'all')));
  document.body.dataset.renderMs = (performance.now() - t0).toFixed(1);
  // since navigation start: the page, its index, the chunks it needs and this page of docs
  if (!document.body.dataset.loadMs) document.body.dataset.loadMs = performance.now().toFixed(0);
  document.body.dataset.ready = 'yes';
}
window.addEventListener('hashchange', render);
render();
"""

CHUNK = 500  # docs per chunk script


def _json_for_script(obj) -> str:
    # inside <script>: "<" as \\u003c, so no completion can close the element or open a comment
    return json.dumps(obj, ensure_ascii=False).replace("<", "\\u003c").replace("&", "\\u0026")


def sample_page_files(
    ts: TaskSamples, name: str, *, board_href: str = "../leaderboard.html"
) -> dict[str, str]:
    """``{relative path: text}``: the page ``name`` and its doc chunks under ``<stem>.d/``. The
    page holds the lineage and an index of (doc_id, flip) only; a page of docs loads the chunk
    scripts it shows, so a 10,000-doc task opens as fast as a 50-doc one."""
    data = to_dict(ts)
    docs = data.pop("docs")
    chunk_dir = name.removesuffix(".html") + ".d"
    data["chunk_dir"] = chunk_dir
    flip_code = {None: 0, "wrong → right": 1, "right → wrong": -1}
    data["index"] = [[d["doc_id"], flip_code[d["flip"]]] for d in docs]
    files = {
        f"{chunk_dir}/{i // CHUNK}.js": f"benchChunk({i // CHUNK}, {_json_for_script(docs[i : i + CHUNK])});\n"
        for i in range(0, len(docs), CHUNK)
    }
    lineage = " → ".join(f"{s} ({k[:8]})" for s, k in ts.stages)
    flips = (
        f"vs parent: {ts.wins} wrong → right, {ts.losses} right → wrong "
        "(the McNemar test's discordant pairs)"
        if ts.parent
        else "no parent stage: nothing flipped"
    )
    nav = "".join(
        f'<a href="#{h}">{escape(label)}</a>'
        for h, label in (
            ("all", f"all ({len(docs)})"),
            ("flipped", f"flipped ({ts.wins + ts.losses})"),
            ("wins", f"wrong → right ({ts.wins})"),
            ("losses", f"right → wrong ({ts.losses})"),
        )
    )
    title = f"{ts.task} · {ts.stages[-1][0]} · samples"
    files[name] = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        f'<h1>{escape(title)}</h1><div class="meta">cell {escape(ts.cell_key)} · lineage '
        f'{escape(lineage)}</div><div class="meta" id="flips" data-wins="{ts.wins}" '
        f'data-losses="{ts.losses}">{escape(flips)}</div>'
        f'<nav>{nav}<a href="{escape(board_href)}">board</a></nav><div class="meta" id="shown"></div>'
        '<div class="pager" id="pager"></div><div id="docs"></div>'
        f'<script type="application/json" id="data">{_json_for_script(data)}</script>'
        f"<script>{_JS % (PAGE_SIZE, CHUNK)}</script></body></html>\n"
    )
    return files


def write_page(
    ts: TaskSamples, out_dir: str | Path, name: str, board_href: str = "../leaderboard.html"
) -> list[Path]:
    """The page and its chunk scripts; returns the files written, the page first."""
    out = Path(out_dir)
    shutil.rmtree(out / (name.removesuffix(".html") + ".d"), ignore_errors=True)
    files = sample_page_files(ts, name, board_href=board_href)
    for rel, text in files.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text, encoding="utf-8")
    return [out / name, *(out / rel for rel in files if rel != name)]


def write_sample_pages(
    con, board, out_dir: str | Path, board_href: str = "../leaderboard.html"
) -> list[Path]:
    """A page per board cell under ``out_dir`` (the board links ``samples/<name>``), with its
    chunk scripts; returns every file written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written, parents = [], lineage_parents(con)
    for row in board.rows:
        for col, cell in row.cells.items():
            task = next((c.task for c in board.columns if c.label == col), None)
            if task is None:
                continue
            try:
                (ts,) = lineage_samples(con, cell.cell_key, task, parents=parents)
            except ValueError:  # a cell without samples: no page, and no link (html.py checks)
                continue
            written += write_page(ts, out, sample_page_name(cell.cell_key, task), board_href)
    return written
