"""`make demo`: hotconf end to end against its own Apollo-compatible dev server.

1. start `hotconf serve` on 127.0.0.1 (any free port);
2. publish two namespaces with `hotconf publish`;
3. read them with a hotconf Config;
4. publish a change and watch the client receive it through Apollo's long poll;
5. stop everything it started.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time

from hotconf import Config

HOTCONF = [sys.executable, "-m", "hotconf.cli"]


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def hotconf(*args: str) -> None:
    print("$ hotconf " + " ".join(shlex.quote(a) for a in args), flush=True)
    out = subprocess.run(HOTCONF + list(args), capture_output=True, text=True, timeout=30)
    sys.stdout.write("  " + (out.stdout or out.stderr).strip() + "\n")
    if out.returncode:
        raise SystemExit(f"demo: `hotconf {args[0]}` failed with exit code {out.returncode}")


def start_server() -> tuple:
    proc = subprocess.Popen(HOTCONF + ["serve", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    line = proc.stdout.readline()
    if "listening on " not in line:
        proc.kill()
        raise SystemExit(f"demo: the dev server did not start: {line}")
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    return proc, line.split("listening on ")[1].split()[0]


def main() -> int:
    say("1. Start the Apollo-compatible dev server")
    proc, url = start_server()
    print(f"hotconf serve (pid {proc.pid}) is listening on {url}")
    cache_dir = tempfile.mkdtemp(prefix="hotconf-demo-")
    try:
        say("2. Publish two namespaces, as you would in the Apollo portal")
        hotconf("publish", "--server", url, "--app", "demo", "application",
                "greeting=hello", "timeout=30")
        db_file = os.path.join(cache_dir, "db.yaml")
        with open(db_file, "w") as fh:
            fh.write("db:\n  url: postgresql://db-1/app\n  pool: 5\n")
        hotconf("publish", "--server", url, "--app", "demo", "db.yaml", "--file", db_file)

        say("3. Read them with hotconf")
        print(f'cfg = Config(app_id="demo", server="{url}", namespaces=["application", "db.yaml"])')
        cfg = Config(app_id="demo", server=url, namespaces=["application", "db.yaml"],
                     cache_dir=cache_dir)
        print(f'cfg.get("greeting")                      -> {cfg.get("greeting")!r}')
        print(f'cfg.get_int("timeout")                   -> {cfg.get_int("timeout")!r}')
        print(f'cfg.get("db.url", namespace="db.yaml")   -> '
              f'{cfg.get("db.url", namespace="db.yaml")!r}')
        print(f'cfg.get_int("db.pool", namespace="db.yaml") -> '
              f'{cfg.get_int("db.pool", namespace="db.yaml")!r}')

        say("4. Publish a change; the client hears of it through the long poll")
        received = threading.Event()
        seen_at = []

        def on_change(event):
            seen_at.append(time.monotonic())
            for key, (old, new, kind) in event.changes.items():
                print(f"  on_change: {event.namespace}:{key} {kind.value} {old!r} -> {new!r}")
            received.set()

        cfg.on_change(on_change)
        time.sleep(0.2)  # let the long poll settle into its hold
        published_at = time.monotonic()
        hotconf("publish", "--server", url, "--app", "demo", "application",
                "greeting=hello, hotconf", "timeout=30")
        if not received.wait(10):
            raise SystemExit("demo: the change did not arrive within 10 s")
        print(f'cfg.get("greeting")                      -> {cfg.get("greeting")!r}')
        print(f"  seen {1000 * (seen_at[0] - published_at):.0f} ms after `hotconf publish` "
              f"started (that includes starting the command)")
        print(f"  the last good config is cached in {cache_dir}/demo+default.json")
        cfg.stop()
    finally:
        say("5. Stop everything the demo started")
        proc.terminate()
        proc.wait(10)
        print(f"hotconf serve (pid {proc.pid}) stopped")
    print("\nDone. `make test` runs the test suite; README.md has the API.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
