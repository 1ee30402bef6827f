"""A minimal ASGI app for uvicorn --workers: module-level Config, read per request."""

import asyncio
import json
import os
from urllib.parse import parse_qs

from hotconf import Config

cfg = Config(namespaces=["application"])


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    query = parse_qs(scope.get("query_string", b"").decode())
    await asyncio.sleep(float(query.get("sleep", ["0"])[0]))
    body = json.dumps({"pid": os.getpid(), "greeting": cfg.get("greeting"),
                       "role": cfg.role}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
