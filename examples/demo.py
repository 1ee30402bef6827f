"""`make demo`: the uWSGI example (examples/uwsgi) end to end, against hotconf's dev server.

1. start `hotconf serve` (an Apollo-compatible config service) on 127.0.0.1;
2. publish a namespace with `hotconf publish`;
3. start uWSGI with 4 prefork workers and a hotconf mule (examples/uwsgi/uwsgi.ini);
4. ask every worker what it serves;
5. publish a change and wait until every worker serves it;
6. show that the whole server holds one long poll;
7. change db.url, which each worker's connection is built from (``cfg.resource``): every
   worker builds a new connection, without a server reload (same pids);
8. publish a db.url the connection factory rejects: every worker keeps its connection, and
   ``hotconf status`` shows the error;
9. change the banner, which the app reads once at import (``reload_on``): the mule reloads
   uWSGI once, gracefully, and every worker comes back with it;
10. stop everything the demo started.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
HOTCONF = [sys.executable, "-m", "hotconf.cli"]
UWSGI = str(Path(sys.executable).parent / "uwsgi")
WORKERS = 4


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def hotconf(*args: str) -> None:
    print("$ hotconf " + " ".join(shlex.quote(a) for a in args), flush=True)
    out = subprocess.run(HOTCONF + list(args), capture_output=True, text=True, timeout=30)
    print("  " + (out.stdout or out.stderr).strip(), flush=True)
    if out.returncode:
        raise SystemExit(f"demo: `hotconf {args[0]}` failed (exit code {out.returncode})")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str, timeout: float = 5.0):
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


def ask_every_worker(url: str, want: str, timeout: float = 20.0, field: str = "greeting") -> dict:
    """Concurrent requests that each hold their worker 0.2 s, until all 4 answered `want`."""
    latest: dict = {}
    deadline = time.monotonic() + timeout
    with concurrent.futures.ThreadPoolExecutor(WORKERS * 2) as pool:
        while time.monotonic() < deadline:
            for answer in pool.map(lambda _: _try(url + "/?sleep=0.2"), range(WORKERS * 2)):
                if answer:
                    latest[answer["pid"]] = answer
            latest = {pid: a for pid, a in latest.items() if a[field] == want} or latest
            if len(latest) >= WORKERS and all(a[field] == want for a in latest.values()):
                return latest
    raise SystemExit(f"demo: not every worker served {want!r} within {timeout:.0f} s: {latest}")


def _try(url: str):
    try:
        return get_json(url)
    except OSError:
        return None


def show(answers: dict) -> None:
    for pid, a in sorted(answers.items()):
        own = "its own" if a["connection_pid"] == pid else f"process {a['connection_pid']}'s"
        print(f"  worker pid {pid:>6} ({a['role']}): greeting = {a['greeting']!r}, banner = "
              f"{a['banner']!r}, connection {a['connection']} ({own}) to {a['db_url']}")


def publish(apollo: str, **values: str) -> None:
    hotconf("publish", "--server", apollo, "--app", "demo", "application",
            *(f"{key.replace('_', '.')}={value}" for key, value in values.items()))


def status(env: dict) -> None:
    print("$ hotconf status")
    out = subprocess.run(HOTCONF + ["status"], capture_output=True, text=True, timeout=30,
                         env={**env, "APP_ID": "demo"})
    print("  " + out.stdout.strip().replace("\n", "\n  "))


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # anything left in its session (workers, mule)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait(10)


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="hotconf-demo-"))
    say("1. Start the Apollo-compatible dev server")
    serve = subprocess.Popen(HOTCONF + ["serve", "--port", "0"], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)
    uwsgi = None
    port = 0
    try:
        line = serve.stdout.readline()
        if "listening on " not in line:
            raise SystemExit(f"demo: the dev server did not start: {line}")
        apollo = line.split("listening on ")[1].split()[0]
        print(f"hotconf serve (pid {serve.pid}) is listening on {apollo}")

        say("2. Publish a namespace, as you would in the Apollo portal")
        values = {"greeting": "hello", "banner": "welcome", "db_url": "postgresql://db-1/app"}
        publish(apollo, **values)

        say(f"3. Start uWSGI: {WORKERS} prefork workers, no lazy-apps, a hotconf mule")
        port = free_port()
        env = {**os.environ, "PORT": str(port), "APOLLO_META": apollo,
               "APOLLO_CACHE_DIR": str(work / "cache"), "VIRTUAL_ENV": sys.prefix}
        log_path = work / "uwsgi.log"
        print(f"$ PORT={port} APOLLO_META={apollo} uwsgi --ini examples/uwsgi/uwsgi.ini "
              f"  (log: {log_path})")
        with open(log_path, "wb") as log:
            uwsgi = subprocess.Popen([UWSGI, "--ini", str(HERE / "uwsgi" / "uwsgi.ini")],
                                     env=env, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while _try(url + "/") is None:
            if uwsgi.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("demo: uWSGI did not start:\n" + log_path.read_text()[-3000:])
            time.sleep(0.2)

        say("4. Every worker serves the published value, each with a connection of its own")
        first = ask_every_worker(url, "hello")
        show(first)

        say("5. Publish a change; the mule hears it and every worker swaps it in")
        started = time.monotonic()
        values["greeting"] = "bonjour"
        publish(apollo, **values)
        answers = ask_every_worker(url, "bonjour")
        show(answers)
        print(f"  every worker served it {time.monotonic() - started:.2f} s after the publish "
              f"command started (including that command and the 0.2 s requests)")

        say("6. One long poll for the whole server, whatever the number of workers")
        stats = get_json(apollo + "/admin/stats")
        print(f"  long polls open at the dev server for app 'demo': "
              f"{stats['long_polls_open_by_app'].get('demo', 0)}  (workers: {len(answers)})")
        pollers = [ln for ln in log_path.read_text().splitlines() if " polls for " in ln]
        print(f"  who polls: {pollers[-1].split(' INFO ')[-1] if pollers else '(see the log)'}")

        say("7. Change db.url: each worker builds a new connection, no server reload")
        started = time.monotonic()
        values["db_url"] = "postgresql://db-2/app"
        publish(apollo, **values)
        answers = ask_every_worker(url, "postgresql://db-2/app", timeout=40, field="db_url")
        show(answers)
        kept = sorted(answers) == sorted(first)
        print(f"  every worker has a new connection {time.monotonic() - started:.1f} s after the "
              f"publish; the same worker pids as in step 4: {kept} (no reload)")

        say("8. Publish a db.url the connection factory rejects: every worker keeps its connection")
        publish(apollo, **{**values, "db_url": "db-3-without-a-scheme"})
        ask_every_worker(url, "db-3-without-a-scheme", field="config_db_url", timeout=20)
        time.sleep(1.5)  # the rebuild is tried once the change has settled (0.5 s)
        show(ask_every_worker(url, "db-3-without-a-scheme", field="config_db_url"))
        status(env)

        say("9. Change the banner, read once at import: reload_on reloads uWSGI, gracefully")
        started = time.monotonic()
        publish(apollo, **{**values, "banner": "hello again"})
        answers = ask_every_worker(url, "hello again", timeout=40, field="banner")
        show(answers)
        reloads = [ln.split(" WARNING ")[-1] for ln in log_path.read_text().splitlines()
                   if "reload because" in ln]
        print(f"  {reloads[-1] if reloads else '(no reload logged?)'}")
        print(f"  every worker serves the new banner {time.monotonic() - started:.1f} s after the "
              f"publish (2 s settle window + the graceful reload); new worker pids: "
              f"{not set(answers) & set(first)}")
    finally:
        say("10. Stop everything the demo started")
        if uwsgi is not None:
            stop(uwsgi, signal.SIGINT)
            Path(f"/tmp/hotconf-uwsgi-{port}.fifo").unlink(missing_ok=True)
            print(f"uWSGI (pid {uwsgi.pid}) stopped")
        stop(serve)
        print(f"hotconf serve (pid {serve.pid}) stopped")
    print("\nDone. examples/uwsgi/README.md runs the same by hand; `make test` runs the tests.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
