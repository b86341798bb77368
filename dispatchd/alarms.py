"""Memory and disk alarms: RabbitMQ's ``vm_memory_monitor``, ``rabbit_disk_monitor`` and
``rabbit_alarm`` on one node.

:class:`Alarms` is the pure state (which resources are short, and the ``connection.blocked``
reason); :class:`ResourceMonitor` is the loop-side shell that measures and tells the broker.
What an alarm does to connections is the wire layer's (``wire/protocol.py``, after
``rabbit_reader``'s ``control_throttle``): a connection that publishes while an alarm is on
stops being read.

Memory is the process's RSS, read from ``/proc/self/statm`` with one ``pread`` of an open
descriptor (measured: 0.7 µs; opening the file each time: 5 µs), every
:data:`MEMORY_CHECK_INTERVAL` seconds. RabbitMQ sets the alarm when memory is above the limit
and clears it once it is not (no hysteresis); so do we. CPython and glibc seldom give freed
memory back, so an RSS alarm alone could stay on after the backlog drained: measured, 400k
queued 1 KiB messages took RSS from 11 to 534 MiB; once freed RSS stayed at 238 MiB, and
``malloc_trim(0)`` brought it to 13 MiB in 7 ms (with 2% of them still alive, scattered:
534 MiB stayed 534, and trimming gave back 372 MiB in 40 ms). So while the memory alarm is on
the monitor calls ``malloc_trim(0)`` at most every :data:`TRIM_INTERVAL` seconds, in a thread
(ctypes releases the GIL, so the loop never waits on it). Counting the bytes the broker holds
would miss the interpreter's own overhead (~1.4 KiB of RSS per queued 1 KiB message), which
is what runs a machine out of memory.

Disk is the data dir's free space (``os.statvfs``, 0.7 µs), checked adaptively as RabbitMQ
does: as often as the free space could reach the limit filling at 250 MB/s, between 0.1 and
10 seconds.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DISK",
    "MEMORY",
    "Alarms",
    "DiskLimit",
    "MemoryWatermark",
    "ResourceMonitor",
    "Resources",
    "parse_size",
    "total_memory",
]

log = logging.getLogger("dispatchd.alarms")

MEMORY = "memory"
DISK = "disk"
#: Seconds between RSS reads (RabbitMQ: 1 s; a flood fills faster than that).
MEMORY_CHECK_INTERVAL = 0.2
#: Least seconds between two ``malloc_trim`` calls while the memory alarm is on.
TRIM_INTERVAL = 1.0
#: rabbit_disk_monitor's bounds and assumed fill rate.
DISK_MIN_INTERVAL, DISK_MAX_INTERVAL = 0.1, 10.0
DISK_FAST_RATE = 250_000_000  # bytes per second

_UNITS = {
    "": 1,
    "k": 1024,
    "kib": 1024,
    "kb": 1000,
    "m": 1024**2,
    "mib": 1024**2,
    "mb": 1000**2,
    "g": 1024**3,
    "gib": 1024**3,
    "gb": 1000**3,
}  # fmt: skip (RabbitMQ has no T units)
_SIZE = re.compile(r"\s*(\d+)\s*([a-zA-Z]*)\s*")


def parse_size(text: str) -> int:
    """Bytes from RabbitMQ's information units: ``50000000``, ``50MB`` (10^6), ``150MiB``
    or ``150M`` (2^20), ``2GB``, ``2GiB``, ...; ValueError otherwise."""
    match = _SIZE.fullmatch(text)
    unit = match and _UNITS.get(match.group(2).lower())
    if not match or unit is None:
        raise ValueError(f"not a size: {text!r}")
    return int(match.group(1)) * unit


def _cgroup_limit() -> int | None:
    """The cgroup's memory limit (v2 ``memory.max``, v1 ``memory.limit_in_bytes``), if any."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:  # v1 writes "no limit" as ~2^63
            return int(text)
    return None


def total_memory() -> int:
    """The memory available to this process: the machine's, or the cgroup limit if lower."""
    machine = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    limit = _cgroup_limit()
    return min(machine, limit) if limit else machine


@dataclass(frozen=True, slots=True)
class MemoryWatermark:
    """``vm_memory_high_watermark``: a fraction of the memory, or an absolute size."""

    fraction: float | None = 0.4
    absolute: int | None = None

    @classmethod
    def parse(cls, text: str) -> MemoryWatermark:
        """``0.4`` (a fraction, 0 to 1) or a size (``2GiB``, ``150MiB``, ``2000000000``)."""
        text = text.strip()
        return cls.of_fraction(float(text)) if "." in text else cls(None, parse_size(text))

    @classmethod
    def of_fraction(cls, fraction: float) -> MemoryWatermark:
        """A fraction of the memory, 0 to 1 (ValueError with rabbitmqctl's text otherwise)."""
        if not 0 <= fraction <= 1:
            raise ValueError("The threshold should be a fraction between 0.0 and 1.0")
        return cls(fraction, None)

    def limit(self, total: int) -> int:
        """The limit in bytes for ``total`` bytes of memory."""
        if self.absolute is not None:
            return self.absolute
        assert self.fraction is not None
        return int(total * self.fraction)

    def __str__(self) -> str:
        return str(self.fraction) if self.absolute is None else str(self.absolute)


@dataclass(frozen=True, slots=True)
class DiskLimit:
    """``disk_free_limit``: bytes, or ``mem_relative`` (a multiple of the memory)."""

    absolute: int | None = 50_000_000
    relative: float | None = None

    @classmethod
    def parse(cls, text: str) -> DiskLimit:
        """``50000000``, ``50MB``, ``1GB``, or a multiple of the memory as ``1.0``."""
        text = text.strip()
        if "." in text:
            return cls(None, float(text))
        return cls(parse_size(text), None)

    def limit(self, total: int) -> int:
        """The limit in bytes for ``total`` bytes of memory."""
        if self.absolute is not None:
            return self.absolute
        assert self.relative is not None
        return int(total * self.relative)


@dataclass(frozen=True, slots=True)
class Resources:
    """What the monitor last measured, and the alarms on (for the admin and ``ctl``)."""

    mem_used: int
    mem_limit: int
    disk_free: int
    disk_free_limit: int
    alarms: tuple[str, ...]  # in the order they were raised


class Alarms:
    """Which resources are short, as ``rabbit_alarm`` on one node."""

    __slots__ = ("active",)

    def __init__(self) -> None:
        self.active: dict[str, None] = {}  # in the order they were raised

    def set(self, resource: str, on: bool) -> bool:
        """Raise or clear ``resource``'s alarm; whether that changed anything."""
        if on == (resource in self.active):
            return False
        if on:
            self.active[resource] = None
        else:
            del self.active[resource]
        return True

    @property
    def reason(self) -> str:
        """``connection.blocked``'s reason: ``low on memory``, ``low on disk``, or
        ``low on memory & disk`` (``rabbit_reader:blocked_by_message``)."""
        return "low on " + " & ".join(r for r in (MEMORY, DISK) if r in self.active)


def _trimmer() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, where there is one."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


class ResourceMonitor:
    """Measures memory and disk on the loop, keeps ``alarms`` and reports each change to
    ``changed(resource, on)`` (on the loop thread)."""

    def __init__(
        self,
        watermark: MemoryWatermark,
        disk_limit: DiskLimit,
        data_dir: str,
        node: str,
        alarms: Alarms,
        changed: Callable[[str, bool], None],
    ) -> None:
        self.watermark = watermark
        self.disk_limit = disk_limit
        self.data_dir = data_dir
        self.node = node
        self.changed = changed
        self.total = total_memory()
        self.mem_used = 0
        self.disk_free = 0
        self.alarms = alarms
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._statm = os.open("/proc/self/statm", os.O_RDONLY)
        self._trim = _trimmer()
        self._trimming = False
        self._trimmed_at = 0.0
        self._loop = asyncio.get_running_loop()
        self._timers: dict[str, asyncio.TimerHandle] = {}

    @property
    def mem_limit(self) -> int:
        """The memory limit in bytes."""
        return self.watermark.limit(self.total)

    @property
    def disk_free_limit(self) -> int:
        """The disk free limit in bytes."""
        return self.disk_limit.limit(self.total)

    def figures(self) -> Resources:
        """The latest measurements and limits."""
        return Resources(
            self.mem_used,
            self.mem_limit,
            self.disk_free,
            self.disk_free_limit,
            tuple(self.alarms.active),
        )

    def start(self) -> None:
        """Measure now, then keep measuring."""
        self._log_watermark()
        self._log_disk_limit()
        self._check_memory()
        self._check_disk()

    def _log_watermark(self) -> None:
        log.info(
            "Memory high watermark set to %d MiB (%d bytes) of %d MiB (%d bytes) total",
            self.mem_limit >> 20,
            self.mem_limit,
            self.total >> 20,
            self.total,
        )

    def _log_disk_limit(self) -> None:
        log.info("Disk free limit set to %dMB", self.disk_free_limit // 1_000_000)

    def stop(self) -> None:
        """Stop measuring."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        os.close(self._statm)

    def set_watermark(self, watermark: MemoryWatermark) -> None:
        """``set_vm_memory_high_watermark``: a new limit, applied at once."""
        self.watermark = watermark
        self._log_watermark()
        self._timers.pop(MEMORY).cancel()
        self._check_memory()

    def set_disk_limit(self, limit: DiskLimit) -> None:
        """``set_disk_free_limit``: a new limit, applied at once."""
        self.disk_limit = limit
        self._log_disk_limit()
        self._timers.pop(DISK).cancel()
        self._check_disk()

    def rss(self) -> int:
        """This process's resident set size in bytes."""
        return int(os.pread(self._statm, 64, 0).split()[1]) * self._page

    def _check_memory(self) -> None:
        self.mem_used = used = self.rss()
        over = used > self.mem_limit
        self._report(MEMORY, over, f"Memory used:{used} allowed:{self.mem_limit}")
        if over and self._trim is not None and not self._trimming:
            now = self._loop.time()
            if now - self._trimmed_at >= TRIM_INTERVAL:
                self._trimming, self._trimmed_at = True, now
                self._loop.run_in_executor(None, self._trim, 0).add_done_callback(self._trimmed)
        self._timers[MEMORY] = self._loop.call_later(MEMORY_CHECK_INTERVAL, self._check_memory)

    def _trimmed(self, _future: asyncio.Future[int]) -> None:
        self._trimming = False

    def _check_disk(self) -> None:
        limit = self.disk_free_limit
        try:
            stat = os.statvfs(self.data_dir)
        except OSError as exc:
            log.warning("cannot measure free disk space of %s: %s", self.data_dir, exc)
            interval = DISK_MAX_INTERVAL
        else:
            self.disk_free = free = stat.f_bavail * stat.f_frsize
            self._report(DISK, free < limit, f"Free bytes: {free} limit: {limit}")
            interval = 2 * (free - limit) / DISK_FAST_RATE
        interval = max(DISK_MIN_INTERVAL, min(DISK_MAX_INTERVAL, interval))
        self._timers[DISK] = self._loop.call_later(interval, self._check_disk)

    def _report(self, resource: str, on: bool, figures: str) -> None:
        if not self.alarms.set(resource, on):
            return
        if on:
            log.warning(
                "%s resource limit alarm set on node %s (%s). "
                "*** Publishers will be blocked until this alarm clears ***",
                resource,
                self.node,
                figures,
            )
        else:
            log.warning(
                "%s resource limit alarm cleared on node %s (%s)", resource, self.node, figures
            )
        self.changed(resource, on)
