"""pyapollos 0.1.5 under uWSGI lazy-apps, with a read timeout above the server's hold. It has
no change listener: for the propagation runs only (BENCH_DETECT=1), a thread per worker checks
the value every 2 ms to timestamp the change. It is the harness's, not pyapollos' cost."""

import os
import threading
import time

from common import KEY, read_costs, record_swap
from flask import Flask, jsonify, request
from pyapollos import ApolloClient

client = ApolloClient(app_id=os.environ["APP_ID"], cluster="default",
                      config_server_url=os.environ["APOLLO_CONFIG"], timeout=75, ip="127.0.0.1")
client.start(catch_signals=False)


def _detect():
    last = client.get_value(KEY, None, namespace="application")
    while True:
        value = client.get_value(KEY, None, namespace="application")
        if value != last:
            record_swap("pys")
            last = value
        time.sleep(0.002)


if os.environ.get("BENCH_DETECT") == "1":
    threading.Thread(target=_detect, daemon=True).start()
app = Flask(__name__)


@app.get("/")
def index():
    return jsonify(pid=os.getpid(), value=client.get_value(KEY, None, namespace="application"))


@app.get("/bench/read")
def bench_read():
    n = int(request.args.get("n", "100000"))
    return jsonify(read_costs(lambda: client.get_value(KEY, None, namespace="application"), n))
