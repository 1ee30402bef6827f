"""The propagation floor: one plain Python process, no server, no sharing. It polls for itself
into a private in-memory store and logs each change to $SWAP_LOG as the uWSGI apps do, so the
harness times it the same way. Prints "ready" once the first read is served; the harness stops
it by its pid (it exits by itself after $FLOOR_SECONDS, 600 by default, at the latest)."""

import os
import time

from common import KEY, record_swap

from hotconf import Config

cfg = Config(store="memory")  # APP_ID, APOLLO_META and APOLLO_CACHE_DIR from the environment
cfg.on_change(lambda event: record_swap(event.release_key))
cfg.get(KEY)
print("ready", flush=True)
time.sleep(float(os.environ.get("FLOOR_SECONDS", "600")))
cfg.stop()
