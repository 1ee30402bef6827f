"""The project under ASGI, wrapped with an event-loop lag probe (tests/servers/lag_probe.py):
``/lag`` answers how long the loop was held, net of CPU contention."""

import json
import os
import sys
from pathlib import Path

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/servers: lag_probe
from lag_probe import LagProbe  # noqa: E402

django_app = get_asgi_application()
probe = None


async def application(scope, receive, send):
    global probe
    if probe is None and scope["type"] in ("http", "lifespan"):
        probe = LagProbe()
        probe.start()
    if scope["type"] == "http" and scope["path"] == "/lag":
        body = json.dumps({"pid": os.getpid(), "max_net": probe.max_net}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})
        return
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    await django_app(scope, receive, send)
