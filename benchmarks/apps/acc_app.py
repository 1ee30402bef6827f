"""apollo-config-client 0.1.2 the only way it works under uWSGI: lazy-apps, a client per worker."""

import os

from apollo_config import create_config_manager
from common import KEY, read_costs, record_swap
from flask import Flask, jsonify, request

cm = create_config_manager(app_id=os.environ["APP_ID"], config_url=os.environ["APOLLO_CONFIG"],
                           cluster="default", namespaces=["application"],
                           cache_dir=os.environ.get("PEER_CACHE", ".apollo_cache"))
cm.on_namespace_change("application")(lambda ns, changes: record_swap("acc"))

app = Flask(__name__)


@app.get("/")
def index():
    return jsonify(pid=os.getpid(), value=cm.get_value(KEY, None, "application"))


@app.get("/bench/read")
def bench_read():
    n = int(request.args.get("n", "100000"))
    return jsonify(read_costs(lambda: cm.get_value(KEY, None, "application"), n))
