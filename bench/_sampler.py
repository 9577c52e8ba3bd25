"""Where a process's memory peaks: resident memory sampled with the Python stack of the main thread.

A light, memray-like profiler for the scaling benchmark: a thread reads the process's resident
memory every ``interval`` seconds and, whenever it reaches a new maximum, records the main
thread's stack (the frames of the project and of the libraries it calls). At the end,
:meth:`MemorySampler.report` says how high memory went and in which function it was.

    with MemorySampler() as s:
        run_the_step()
    print(s.report())
"""

from __future__ import annotations

import sys
import threading
import time
import traceback

from _common import current_rss_gb


class MemorySampler:
    """Sample resident memory; keep the main thread's stack at the highest sample."""

    def __init__(self, interval: float = 0.05, depth: int = 12):
        self.interval = interval
        self.depth = depth
        self.peak = 0.0
        self.stack: list[str] = []
        self.timeline: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._main = threading.main_thread().ident
        self._t0 = time.perf_counter()

    def _run(self) -> None:
        last_t = -1.0
        while not self._stop.is_set():
            rss = current_rss_gb()
            now = time.perf_counter() - self._t0
            if now - last_t >= 1.0:
                self.timeline.append((round(now, 1), round(rss, 3)))
                last_t = now
            if rss > self.peak:
                self.peak = rss
                frame = sys._current_frames().get(self._main)
                if frame is not None:
                    frames = traceback.extract_stack(frame)
                    keep = [f for f in frames if "/analysis/" in f.filename or "site-packages" in f.filename]
                    self.stack = [f"{f.filename.split('/site-packages/')[-1].split('/src/')[-1]}:{f.lineno} {f.name}" for f in keep[-self.depth:]]
            time.sleep(self.interval)

    def __enter__(self) -> MemorySampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def report(self) -> dict:
        """The sampled peak (GB) and the stack (innermost last) at which it was reached."""
        return {"sampled_peak_gb": round(self.peak, 3), "stack_at_peak": self.stack}
