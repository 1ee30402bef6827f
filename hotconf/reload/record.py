"""The host's record of a pending server reload (I/O edge): ``{cache_dir}/{key}.reload``.

Only the poller's process fires a server-level reload. When it learns of a change that calls for
one, it records the reload as pending, with its deadline; when it fires it, it clears the record.
If it dies inside the settle window, whichever process polls next (one that took over, or a fresh
worker that won the election and never saw the change) finds the pending reload and fires it
once. The record names the server (the poller's parent: the uWSGI master or gunicorn arbiter), so
a reload pending before a full restart is not fired again after it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from ..cache import write_atomically
from ..pathlocks import lock_for

log = logging.getLogger("hotconf")

#: A pending reload older than this is dropped: the server has surely been restarted since.
EXPIRES_AFTER = 600.0



@dataclass(frozen=True)
class Pending:
    summary: str
    due_at: float    # wall clock: the pending reload may be read by another process
    server: int      # the pid of the server process that is to reload (the poller's parent)
    since: float


class ReloadRecord:
    def __init__(self, path: Path):
        self.path = Path(path)
        # check-fire-clear is one step within a process (a timer and the guard may race)
        self.lock = lock_for(self.path)

    def pending(self) -> Optional[Pending]:
        """The reload pending for this server, if any."""
        try:
            found = Pending(**json.loads(self.path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None
        if found.server != os.getppid() or time.time() - found.since > EXPIRES_AFTER:
            return None
        return found

    def peek(self) -> Optional[Pending]:
        """The reload pending on this host, for whichever server (``hotconf status``)."""
        try:
            found = Pending(**json.loads(self.path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None
        return found if time.time() - found.since <= EXPIRES_AFTER else None

    def set_pending(self, summary: str, due_in: float) -> None:
        now = time.time()
        self._write(Pending(summary, now + max(0.0, due_in), os.getppid(), now))

    def clear(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("hotconf: cannot clear the reload record %s (%s)", self.path,
                        exc.strerror or exc)

    def _write(self, pending: Pending) -> None:
        try:
            write_atomically(self.path, json.dumps(asdict(pending)).encode("utf-8"))
        except OSError as exc:  # the reload itself is unaffected; only the hand-over record
            log.warning("hotconf: cannot write the reload record %s (%s)", self.path,
                        exc.strerror or exc)
