"""The run's console: one live view of the grid, third-party output in a log file per cell.

``bench train+eval`` passes a :class:`LiveView` as ``run_plan``'s progress callback. On
``(cell, "start")`` it sends everything the libraries print or log (lm-eval, trl,
transformers, datasets, tqdm bars, warnings) to ``results/logs/<kind>-<key>.log``; on the
cell's Outcome it restores the streams. Code deeper down reports its phase with
:func:`report` (a no-op when no view listens: the SLURM and worker processes, the API).
A terminal gets a rich Live display; a pipe or CI log gets one line per cell event;
``verbose`` streams the third-party output as well (plain lines, no Live to garble).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

__all__ = ["LiveView", "report", "train_progress", "log_path"]

TAIL_LINES = 15  # of a failed cell's log, shown under its line

_sink: Callable[[str], None] | None = None


def report(phase: str) -> None:
    """The current cell's phase ("loading", "generating 3/20 requests", ...) to whoever shows it."""
    if _sink is not None:
        _sink(phase)


def train_progress(step: int, total: int, loss: float | None) -> None:
    """The trainers' progress callable (trainers must not import harness: they get this function)."""
    report(f"training step {step}/{total}" + (f"  loss {loss:.3f}" if loss is not None else ""))


def log_path(results: Path, cell) -> Path:
    return Path(results) / "logs" / f"{cell.kind}-{cell.key}.log"


class _Tee:
    """A text stream writing to several (the log file and, with -v, the terminal)."""

    def __init__(self, *streams):
        self.streams = streams

    def write(self, text: str) -> int:
        for s in self.streams:
            s.write(text)
        return len(text)

    def flush(self) -> None:
        for s in self.streams:
            s.flush()

    encoding = "utf-8"

    def isatty(self) -> bool:  # tqdm and transformers ask; a log file is no terminal
        return False

    def fileno(self) -> int:  # what a subprocess or C code writes lands in the log file too
        return self.streams[0].fileno()


@contextlib.contextmanager
def capture(path: Path, verbose: bool = False) -> Iterator[None]:
    """Send stdout, stderr, the root logger and every library logger's own stream handler
    (transformers and datasets bind sys.stderr when they are imported, so redirecting
    sys.stderr alone misses them) to ``path``; with ``verbose`` to the terminal as well."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", buffering=1) as f:
        stream = _Tee(f, sys.stdout) if verbose else _Tee(f)
        terminals = {id(s) for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)}
        swapped = []
        for logger in [logging.root, *logging.root.manager.loggerDict.values()]:
            for h in getattr(logger, "handlers", []):
                if type(h) is logging.StreamHandler and id(h.stream) in terminals:
                    swapped.append((h, h.setStream(stream)))
        root = logging.root
        mine = logging.StreamHandler(stream)
        mine.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        level = root.level
        root.addHandler(mine)
        root.setLevel(min(level, logging.INFO))
        logging.captureWarnings(
            True
        )  # warnings through the root logger, whoever replaced showwarning
        try:
            with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
                yield
        finally:
            logging.captureWarnings(False)
            root.removeHandler(mine)
            root.setLevel(level)
            for h, old in swapped:
                h.setStream(old)


def _clock(s: float) -> str:
    s = int(s)
    return (
        f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
    )


class LiveView:
    """The progress callback of one run: ``view(cell, "start" | Outcome)``."""

    def __init__(self, cells: list, results: Path, console: Console, verbose: bool = False):
        self.total, self.results, self.console, self.verbose = (
            len(cells),
            Path(results),
            console,
            verbose,
        )
        self.live_mode = console.is_terminal and not verbose
        self.t0 = time.monotonic()
        self.rows: list[tuple] = []  # (cell, outcome, seconds)
        self.current = None
        self.phase, self.cell_t0 = "", 0.0
        self._capture: contextlib.ExitStack | None = None
        self._live: Live | None = None

    def __enter__(self) -> LiveView:
        global _sink
        _sink = self._set_phase
        if self.live_mode:
            self._live = Live(
                get_renderable=self._render,
                console=self.console,
                refresh_per_second=4,
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._live.start()
        return self

    def __exit__(self, *exc) -> None:
        global _sink
        _sink = None
        self._close_capture()
        if self._live is not None:
            self._live.stop()

    def _set_phase(self, phase: str) -> None:
        self.phase = phase

    def _close_capture(self) -> None:
        if self._capture is not None:
            self._capture.close()
            self._capture = None

    @property
    def done(self) -> int:
        return sum(1 for _, o, _ in self.rows if o.status != "submitted")

    def __call__(self, cell, state) -> None:
        if state == "start":
            self.current, self.phase, self.cell_t0 = cell, "loading", time.monotonic()
            self._line(cell, "start")
            self._capture = contextlib.ExitStack()
            self._capture.enter_context(capture(log_path(self.results, cell), self.verbose))
            return
        seconds = time.monotonic() - self.cell_t0 if self.current is cell else 0.0
        if self.current is cell:
            self._close_capture()
            self.current = None
        self.rows.append((cell, state, seconds))
        self._line(cell, f"{state}" + (f"  ({_clock(seconds)})" if seconds else ""))
        if state.status == "failed":
            self._show_tail(cell)

    def _line(self, cell, event: str) -> None:
        if self.live_mode and event == "start":
            return  # the live view shows the running cell
        n = self.done + (event == "start")
        self.console.print(
            escape(f"[{n}/{self.total}] {cell.kind:5} {cell.cell_id} [{cell.key}] {event}"),
            highlight=False,
            soft_wrap=True,
        )

    def _show_tail(self, cell) -> None:
        path = log_path(self.results, cell)
        try:
            lines = path.read_text(errors="replace").splitlines()[-TAIL_LINES:]
        except OSError:
            return
        if lines:
            self.console.print(escape(f"  last lines of {path}:"), highlight=False)
            self.console.print(escape("\n".join("    " + ln for ln in lines)), highlight=False)

    def eta(self) -> float | None:
        ran = [s for _, o, s in self.rows if s > 0]
        if not ran:
            return None
        left = self.total - self.done - (self.current is not None)
        current_left = (
            max(sum(ran) / len(ran) - (time.monotonic() - self.cell_t0), 0) if self.current else 0
        )
        return left * sum(ran) / len(ran) + current_left

    def _render(self):
        elapsed = time.monotonic() - self.t0
        eta = self.eta()
        failed = sum(1 for _, o, _ in self.rows if not o.ok and o.status != "submitted")
        head = Text(
            f"cells {self.done}/{self.total}"
            + (f", {failed} not ok" if failed else "")
            + f"   elapsed {_clock(elapsed)}   ETA {_clock(eta) if eta is not None else '?'}",
            style="bold",
        )
        if self.current is None:
            return head
        c = self.current
        now = Text(
            f"{c.kind} {c.cell_id} [{c.key}]  {self.phase}  ({_clock(time.monotonic() - self.cell_t0)})"
        )
        log = Text(f"third-party output: {log_path(self.results, c)}  (-v streams it)", style="dim")
        return Group(head, now, log)

    def summary(self) -> Table:
        table = Table(
            title=f"{self.done} of {self.total} cells, {_clock(time.monotonic() - self.t0)}"
        )
        for col in ("kind", "cell", "key", "outcome", "time"):
            table.add_column(col)
        for cell, o, s in self.rows:
            style = "" if o.ok or o.status == "submitted" else "red"
            table.add_row(
                cell.kind,
                cell.cell_id,
                cell.key,
                escape(str(o))[:80],
                _clock(s) if s else "",
                style=style,
            )
        return table
