"""An event-loop lag probe, net of CPU contention.

A task sleeps ``interval`` in a loop and measures how late it wakes up (the overshoot). Lateness
has two causes: something held the loop (code running on it, or the GIL held by another thread
of the process), or a thread was ready to run but the kernel gave the CPU to another process
(two cores, shared with other test runs). The second is the machine's, not hotconf's, and it
stalls the loop in two ways: the loop's own thread waits for a CPU, or another thread of the
process is preempted while it holds the GIL, and the loop waits for the GIL until that thread
gets a CPU back (with a CPU it would hand the GIL over within the 5 ms switch interval). The
kernel counts both per thread (the second field of /proc/self/task/<tid>/schedstat, time spent
runnable on a run queue), and the probe subtracts what every thread of the process waited
during the sleep. ``net`` is the lag hotconf could cause: code on the loop, or a thread holding
the GIL while it runs (a blocking call on the loop waits in the kernel, not on a run queue, so
it stays in ``net``: see test_a_first_read_on_the_loop_would_block_it).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Dict, List, Optional


def run_queue_waits() -> Dict[str, int]:
    """Nanoseconds each thread of this process has waited on a run queue (runnable, not
    running), so far, by thread id. Empty where /proc is not Linux's: no correction."""
    waits: Dict[str, int] = {}
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return waits
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/schedstat", "rb") as f:
                waits[tid] = int(f.read().split()[1])
        except (OSError, IndexError, ValueError):  # (the thread ended meanwhile)
            pass
    return waits


def waited_between(before: Dict[str, int], after: Dict[str, int]) -> float:
    """Seconds the process's threads waited on run queues between two readings (a thread
    started meanwhile counts whole)."""
    return sum(wait - before.get(tid, 0) for tid, wait in after.items()) / 1e9


class LagProbe:
    def __init__(self, interval: float = 0.005, record_above: float = 0.002):
        self.interval, self.record_above = interval, record_above
        self.samples = 0
        self.max_raw = self.max_net = 0.0
        self.events: List[List[float]] = []  # [wall time, raw, net] of the larger overshoots
        self._task: Optional[asyncio.Task] = None
        self.marks: dict = {}  # name -> {"max_raw", "max_net", "samples", "seconds"}
        self._mark_start: dict = {}

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        w0, t0 = run_queue_waits(), time.perf_counter()
        while True:
            await asyncio.sleep(self.interval)
            t1, w1 = time.perf_counter(), run_queue_waits()
            raw = max(0.0, t1 - t0 - self.interval)
            net = max(0.0, raw - waited_between(w0, w1))
            w0, t0 = w1, time.perf_counter()
            self.samples += 1
            self.max_raw, self.max_net = max(self.max_raw, raw), max(self.max_net, net)
            if raw > self.record_above and len(self.events) < 5000:
                self.events.append([time.time(), round(raw, 6), round(net, 6)])

    # -- windows ---------------------------------------------------------------------------------
    def begin(self, name: str) -> None:
        self._mark_start[name] = (time.time(), time.perf_counter(), self.samples)

    async def end(self, name: str) -> dict:
        """The window since ``begin(name)``; first lets the probe record a sleep that was held
        up until now (its lateness counts in the window)."""
        wall, started, samples = self._mark_start.pop(name)
        seconds = time.perf_counter() - started
        await asyncio.sleep(self.interval * 3)
        inside = [e for e in self.events if e[0] >= wall]
        self.marks[name] = {
            "began": wall,
            "seconds": round(seconds, 4),
            "samples": self.samples - samples,
            "max_raw": max((e[1] for e in inside), default=0.0),
            "max_net": max((e[2] for e in inside), default=0.0),
        }
        return self.marks[name]

    def window(self, since: float, until: float) -> dict:
        inside = [e for e in self.events if since <= e[0] <= until]
        return {"max_raw": max((e[1] for e in inside), default=0.0),
                "max_net": max((e[2] for e in inside), default=0.0), "count": len(inside)}

    def report(self) -> dict:
        return {"samples": self.samples, "max_raw": round(self.max_raw, 6),
                "max_net": round(self.max_net, 6), "marks": self.marks, "events": self.events}
