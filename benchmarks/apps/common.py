"""Shared by the benchmark apps: timing loops and the swap log.

Every app answers the same routes, whatever client it uses:
  /             {"pid", "value"}           the value of key `k` (the harness's probe)
  /bench/read   ns per call for the client's get, dict.get and the file-read workaround
and appends "pid release monotonic" to $SWAP_LOG each time the client reports a change.
"""

import json
import os
import time

KEY = "k"


def ns_per_call(fn, n):
    fn()  # warm
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter_ns()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter_ns() - start) / n)
    return best


def record_swap(release):
    path = os.environ.get("SWAP_LOG")
    if path:
        line = f"{os.getpid()} {release} {time.monotonic():.6f}\n".encode()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)  # one small O_APPEND write: lines never interleave
        finally:
            os.close(fd)


def file_read_value(path, key=KEY):
    """The workaround people fall back to: read and decode the cache file on every call."""
    with open(path, "rb") as fh:
        return json.loads(fh.read()).get(key)


def read_costs(client_get, n, file_path=None):
    table = {"k": "v"}
    result = {"dict_get_ns": ns_per_call(lambda: table.get(KEY), n),
              "client_get_ns": ns_per_call(client_get, n)}
    if file_path:
        result["file_read_ns"] = ns_per_call(lambda: file_read_value(file_path),
                                             max(1, n // 100))
    return result
