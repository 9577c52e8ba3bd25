"""Helpers shared by the benchmark scripts: peak memory, machine and package description."""

from __future__ import annotations

import os
import platform
import resource
from importlib import metadata
from pathlib import Path


def peak_rss_gb() -> float:
    """Peak resident memory of this process in GB, from ``VmHWM`` in ``/proc/self/status``.

    Not ``ru_maxrss``: on Linux it survives fork + exec, so a measurement child could report its
    parent's peak. Falls back to ``ru_maxrss`` where ``/proc`` is absent.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1e6  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def current_rss_gb() -> float:
    """Resident memory of this process now, in GB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e9


def package_versions(packages: tuple[str, ...]) -> dict[str, str]:
    """Python and the given packages' versions (``not installed`` where missing)."""
    out = {"python": platform.python_version()}
    for pkg in packages:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def machine() -> str:
    """CPU model, cores, memory and OS of this machine."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GB RAM, {platform.system()} {platform.release()}"


class MemoryWatch:
    """Machine-wide memory in use (``MemTotal - MemAvailable`` of ``/proc/meminfo``), sampled by a
    thread every ``interval`` seconds while the ``with`` block runs: for runs of several processes
    at once (``make -j2``), whose sum no single process's ``VmHWM`` shows.

    Attributes after the block: ``baseline_gb`` (in use when it started), ``peak_gb`` (the largest
    sample) and ``added_gb`` (their difference: what the run needed, if nothing else on the machine
    changed). Spikes shorter than ``interval`` can be missed.
    """

    def __init__(self, interval: float = 1.0):
        self.interval = interval
        self.baseline_gb = self.peak_gb = float("nan")

    @staticmethod
    def used_gb() -> float:
        info = {}
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, value = line.split(":", 1)
            info[key] = int(value.split()[0])  # kB
        return (info["MemTotal"] - info["MemAvailable"]) / 1e6

    def __enter__(self) -> "MemoryWatch":
        import threading

        self.baseline_gb = self.peak_gb = self.used_gb()
        self._stop = threading.Event()

        def sample() -> None:
            while not self._stop.wait(self.interval):
                self.peak_gb = max(self.peak_gb, self.used_gb())

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_gb = max(self.peak_gb, self.used_gb())

    @property
    def added_gb(self) -> float:
        return self.peak_gb - self.baseline_gb
