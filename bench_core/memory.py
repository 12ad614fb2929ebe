"""A cell's own peak memory: host RSS and CUDA max-allocated over a span of this process.

Process-wide readings (``ru_maxrss``, a CUDA peak never reset) carry an earlier cell's peak
into every later cell run in the same process. A :class:`MemorySpan` resets both high-water
marks when it starts and reads them when asked. Spans nest: a span that starts inside
another first folds the peak so far into every open span, so a train cell's span and its
stage's own span both read true peaks.

Host RSS is Linux's ``VmHWM``, reset by writing 5 to ``/proc/self/clear_refs``: exact, no
sampling. Without it (no procfs) the reading falls back to ``ru_maxrss``, the process's
peak. CUDA is ``torch.cuda.max_memory_allocated`` of the busiest visible device (what a
plan per device is compared against), read only when this process has initialised CUDA.

An inference engine that runs in processes of its own (vLLM) holds its memory there, not in
this process: :func:`children_peak_rss_bytes` reads those processes' peaks while they live.
"""

from __future__ import annotations

import os
import re
import resource
import sys
import weakref
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MemorySpan", "Peak", "peak_rss_bytes", "children_peak_rss_bytes"]

_CLEAR_REFS = "/proc/self/clear_refs"
_STATUS = "/proc/self/status"
_open: weakref.WeakSet[MemorySpan] = weakref.WeakSet()  # a span dropped unstopped just goes


@dataclass(frozen=True)
class Peak:
    rss_bytes: int  # host resident set
    cuda_bytes: int | None  # max allocated on the busiest device; None: CUDA not used

    @property
    def gb(self) -> float:
        """The figure a plan is compared with: the GPU's on GPU, the host's on CPU."""
        return (self.cuda_bytes if self.cuda_bytes is not None else self.rss_bytes) / 1e9


def _vm_hwm(status: str) -> int:
    """A process's peak RSS (``VmHWM``) from its ``/proc/<pid>/status``; OSError or
    AttributeError where there is none (no procfs, a process that has ended, a zombie)."""
    with open(status) as f:
        return int(re.search(r"^VmHWM:\s+(\d+) kB", f.read(), re.M).group(1)) * 1024


def peak_rss_bytes() -> int:
    """This process's peak RSS since the last reset (or since it started)."""
    try:
        return _vm_hwm(_STATUS)
    except (OSError, AttributeError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _descendants(pid: int) -> list[int]:
    """The live processes under ``pid`` (children, theirs, ...), from each process's parent in
    ``/proc/<pid>/stat``."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (command)"
        except (OSError, IndexError):
            continue  # ended while listed
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def children_peak_rss_bytes() -> int | None:
    """The peak RSS of this process's live descendants (an engine's processes, read before they
    are stopped), summed: each one's own peak, so no less than what they held at any one time.
    None: no descendant, or no procfs to read them from."""
    peaks = []
    for pid in _descendants(os.getpid()):
        try:
            peaks.append(_vm_hwm(f"/proc/{pid}/status"))
        except (OSError, AttributeError):
            continue
    return sum(peaks) if peaks else None


def _cuda():
    torch = sys.modules.get("torch")  # not imported yet: CUDA cannot have been used
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    return torch


def _peak_cuda_bytes() -> int | None:
    torch = _cuda()
    if torch is None:
        return None
    return max(torch.cuda.max_memory_allocated(d) for d in range(torch.cuda.device_count()))


def _reset() -> None:
    try:
        with open(_CLEAR_REFS, "w") as f:
            f.write("5")
    except OSError:
        pass  # the fallback reading is the process's peak
    torch = _cuda()
    if torch is not None:
        for d in range(torch.cuda.device_count()):
            torch.cuda.reset_peak_memory_stats(d)


class MemorySpan:
    """``with MemorySpan() as span: ...; span.peak()``, or ``span = MemorySpan().start()`` and
    ``span.stop()``; :meth:`peak` reads the span so far, or the whole span once stopped."""

    def __init__(self) -> None:
        self._rss, self._cuda = 0, None

    def _fold(self, rss: int, cuda: int | None) -> None:
        self._rss = max(self._rss, rss)
        if cuda is not None:
            self._cuda = max(self._cuda or 0, cuda)

    def start(self) -> MemorySpan:
        rss, cuda = peak_rss_bytes(), _peak_cuda_bytes()
        for span in list(_open):  # the peak so far belongs to the spans already open
            span._fold(rss, cuda)
        _reset()
        _open.add(self)
        return self

    def stop(self) -> Peak:
        peak = self.peak()
        _open.discard(self)
        return peak

    def __enter__(self) -> MemorySpan:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def peak(self) -> Peak:
        if self in _open:
            self._fold(peak_rss_bytes(), _peak_cuda_bytes())
        return Peak(self._rss, self._cuda)
