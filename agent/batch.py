"""Batch runs that lose nothing: a JSONL results file keyed by id, and a worker pool with a
progress bar. Used by the QA pipeline (``medagent qa``) and the benchmark harness.

``ResultsFile`` is the resume mechanism: every finished row is appended and flushed to disk
the moment it completes, so a crash or Ctrl-C loses no finished row, and re-running with the
same file skips the ids already there. A last line cut short by a crash is dropped (and the
file truncated back to the last whole row) instead of failing the resume.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

import orjson
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

T = TypeVar("T")
R = TypeVar("R")


class ResultsFile:
    """Finished rows of a batch, one JSON object a line, keyed by ``key``."""

    def __init__(self, path: Path, key: str = "id"):
        self.path = Path(path)
        self.key = key
        self.done: dict[str, dict[str, Any]] = {}
        self.dropped_partial_line = False
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            self._read_existing()

    def _read_existing(self) -> None:
        data = self.path.read_bytes()
        good_until = 0
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break  # a row cut short by a crash: not finished, it runs again
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError:
                break
            if isinstance(row, dict) and self.key in row:
                self.done[str(row[self.key])] = row
            good_until += len(line)
        if good_until < len(data):
            self.dropped_partial_line = True
            with open(self.path, "r+b") as fh:
                fh.truncate(good_until)

    def __contains__(self, key: object) -> bool:
        return str(key) in self.done

    def write(self, row: dict[str, Any]) -> None:
        """Append one finished row and make it durable before returning."""
        line = orjson.dumps(row, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"
        with self._lock, open(self.path, "ab") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
            self.done[str(row[self.key])] = row


def progress_bar(console: Console | None = None, enabled: bool = True) -> Progress:
    """A rich progress bar with count, rate (via elapsed/remaining) and ETA."""
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                    console=console or Console(stderr=True), disable=not enabled, transient=False)


def run_pool(items: Iterable[T], work: Callable[[T], R], *, concurrency: int = 1,
             on_result: Callable[[T, R], None], description: str = "", console: Console | None = None,
             show_progress: bool = True) -> int:
    """Run ``work`` over ``items``, calling ``on_result`` (in this thread) as each finishes.

    One at a time in this thread when ``concurrency`` is 1 (in-process models are not thread
    safe, and Ctrl-C then stops the item at once); otherwise a thread pool of that size. On
    Ctrl-C no new item starts; in-flight items are abandoned (their rows are not written) and
    KeyboardInterrupt propagates. Returns how many items finished.
    """
    items = list(items)
    finished = 0
    with progress_bar(console, show_progress) as bar:
        task = bar.add_task(description, total=len(items), rate="")

        def advance() -> None:
            nonlocal finished
            finished += 1
            elapsed = bar.tasks[0].elapsed or 0.0
            bar.update(task, advance=1, rate=f"{elapsed / finished:.1f} s/item" if finished else "")

        if concurrency <= 1:
            for item in items:
                on_result(item, work(item))
                advance()
            return finished
        pool = ThreadPoolExecutor(max_workers=concurrency)
        pending: dict[Future, T] = {}
        queue = iter(items)
        try:
            for item in queue:
                pending[pool.submit(work, item)] = item
                if len(pending) >= concurrency:
                    break
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    item = pending.pop(fut)
                    on_result(item, fut.result())
                    advance()
                    nxt = next(queue, None)
                    if nxt is not None:
                        pending[pool.submit(work, nxt)] = nxt
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
    return finished
