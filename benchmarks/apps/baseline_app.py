"""The same Flask app with no Apollo client: the baseline for idle CPU and memory."""

import os

from flask import Flask, jsonify

app = Flask(__name__)


@app.get("/")
def index():
    return jsonify(pid=os.getpid(), value=None)
