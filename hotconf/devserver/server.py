"""HTTP front of the dev server: Apollo's client endpoints plus a small admin API.

Client endpoints (as Apollo's config service):
  GET /services/config                              meta: the config-service instances
  GET /configs/{appId}/{cluster}/{namespace}        releaseKey -> 304, ip/label/dataCenter
  GET /configfiles/json/{appId}/{cluster}/{namespace}
  GET /notifications/v2?appId&cluster&notifications[&dataCenter]   long poll
Admin endpoints (hotconf's own, for `hotconf publish` and tests):
  POST   /admin/apps/{app}/clusters/{cluster}/namespaces/{ns}/releases  {"configurations"|"content"}
  POST   /admin/apps/{app}/clusters/{cluster}/namespaces/{ns}/gray      {..., "labels", "ips"}
  DELETE /admin/apps/{app}/clusters/{cluster}/namespaces/{ns}/gray
  DELETE /admin/apps/{app}/clusters/{cluster}/namespaces/{ns}
  PUT    /admin/apps/{app}/accesskey   {"secret": "..."}   (DELETE to remove)
  PUT    /admin/services               {"urls": [...]}     what /services/config advertises
  GET    /admin/stats                  counters: open long polls, requests by endpoint
"""

from __future__ import annotations

import json
import logging
import select
import socket
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import parse_qs, unquote, urlsplit

from ..apollo import signing
from ..options import NAME_PATTERN
from .state import DevState, strip_properties

log = logging.getLogger("hotconf.devserver")

MAX_BODY_BYTES = 16 * 1024 * 1024
AUTH_TOLERANCE_MS = 60_000


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True

    def __init__(self, address, handler, state: DevState):
        self.state = state
        self._open: set = set()
        self._open_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request, client_address):
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address) -> None:
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return  # a client that went away mid-request is routine for a long-poll server
        super().handle_error(request, client_address)

    def drop_connections(self) -> None:
        """Cut every open connection (held long polls included), as a dying server would."""
        with self._open_lock:
            open_now = list(self._open)
        for sock in open_now:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "hotconf-devserver"
    disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms stalls

    def log_message(self, fmt: str, *args) -> None:  # route access logs to logging, quietly
        log.debug("%s %s", self.address_string(), fmt % args)

    # -- plumbing ------------------------------------------------------------------------------------
    @property
    def state(self) -> DevState:
        return self.server.state

    def _send(self, status: int, body: Optional[object] = None,
              content_type: str = "application/json;charset=UTF-8") -> None:
        data = b"" if body is None else (
            body if isinstance(body, bytes) else
            json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
        self.send_response(status)
        if status != 304:
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if status != 304 and data:
            self.wfile.write(data)

    def _error(self, status: int, message: str, error: Optional[str] = None) -> None:
        """Spring Boot's error body, as Apollo sends it (plus the message, for humans)."""
        reason = error or {400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
                           405: "Method Not Allowed", 413: "Payload Too Large"}.get(status, "Error")
        self._send(status, {
            "timestamp": datetime.now(timezone.utc).isoformat(), "status": status,
            "error": reason, "message": message, "path": urlsplit(self.path).path,
        })

    def _query(self) -> Dict[str, str]:
        parsed = parse_qs(urlsplit(self.path).query, keep_blank_values=True)
        return {k: v[0] for k, v in parsed.items()}

    def _segments(self) -> List[str]:
        return [unquote(p) for p in urlsplit(self.path).path.split("/") if p]

    def _client_ip(self, query: Dict[str, str]) -> str:
        if query.get("ip"):
            return query["ip"]
        forwarded = self.headers.get("X-Forwarded-For")
        if forwarded:
            return forwarded.split(",")[0].strip()
        return self.client_address[0]

    def _read_json(self) -> Optional[dict]:
        length = self.headers.get("Content-Length", "0")
        if not length.isdigit():
            self._error(400, "Content-Length required")
            return None
        if int(length) > MAX_BODY_BYTES:
            self._error(413, f"request body over {MAX_BODY_BYTES} bytes")
            self.close_connection = True
            return None
        try:
            data = json.loads(self.rfile.read(int(length)) or b"{}")
        except ValueError as exc:
            self._error(400, f"body is not JSON: {exc}")
            return None
        if not isinstance(data, dict):
            self._error(400, "body must be a JSON object")
            return None
        return data

    def _authorized(self, app_id: str) -> bool:
        """Apollo's ClientAuthenticationFilter: 400 for a bad app id, 401 for a bad signature
        or a timestamp more than 60 s off."""
        if not app_id or not NAME_PATTERN.match(app_id):
            self._error(400, "InvalidAppId")
            return False
        secrets = self.state.secrets_of(app_id)
        if not secrets:
            return True
        try:
            ts = int(self.headers.get("Timestamp", ""))
        except ValueError:
            ts = 0
        if abs(time.time() * 1000 - ts) >= AUTH_TOLERANCE_MS:
            self._error(401, "RequestTimeTooSkewed")
            return False
        presented = self.headers.get("Authorization", "").partition(":")[2]
        if presented and any(signing.verify(s, ts, self.path, presented) for s in secrets):
            return True
        self._error(401, "Unauthorized")
        return False

    # -- routing ---------------------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        segments = self._segments()
        try:
            for route_method, pattern, handler, fixed in ROUTES:
                if route_method != method:
                    continue
                params = _match(pattern, segments)
                if params is not None:
                    getattr(self, handler)(*params, **fixed)
                    return
            self._error(404, "no such endpoint")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    # -- client endpoints ------------------------------------------------------------------------------
    def _services(self) -> None:
        self.state.count("services", None)
        urls = self.state.advertised
        if urls is None:
            host, port = self.server.server_address[:2]
            urls = [f"http://{host!s}:{port}/"]
        self._send(200, [{"appName": "APOLLO-CONFIGSERVICE", "instanceId": u, "homepageUrl": u}
                         for u in urls])

    def _release_for(self, endpoint: str, app_id: str, cluster: str, namespace: str):
        """Count, authorise and resolve a config request; (release, cluster, query), or None
        once the error answer has been sent."""
        self.state.count(endpoint, app_id)
        if not self._authorized(app_id):
            return None
        q = self._query()
        found = self.state.resolve(app_id, cluster, namespace, q.get("dataCenter"),
                                   self._client_ip(q), q.get("label"))
        if found is None:
            self._error(404, f"Could not load configurations with appId: {app_id}, "
                             f"clusterName: {cluster}, namespace: {namespace}")
            return None
        return found[0], found[1], q

    def _configs(self, app_id: str, cluster: str, namespace: str) -> None:
        found = self._release_for("configs", app_id, cluster, namespace)
        if found is None:
            return
        release, used_cluster, q = found
        if q.get("releaseKey") == release.release_key:
            self._send(304)
            return
        self._send(200, {"appId": app_id, "cluster": used_cluster, "namespaceName": namespace,
                         "configurations": dict(release.configurations),
                         "releaseKey": release.release_key})

    def _configfiles_json(self, app_id: str, cluster: str, namespace: str) -> None:
        found = self._release_for("configfiles", app_id, cluster, namespace)
        if found is not None:
            self._send(200, dict(found[0].configurations))

    def _notifications(self) -> None:
        q = self._query()
        app_id, cluster = q.get("appId", ""), q.get("cluster", "")
        self.state.count("notifications", app_id or None)
        if not self._authorized(app_id):
            return
        wanted = self._parse_notifications(q.get("notifications", ""))
        if not cluster or wanted is None:
            self._error(400, f"invalid notifications format: {q.get('notifications', '')[:200]}")
            return
        self.state.long_poll_opened(app_id, +1)
        try:
            ready = self.state.wait_for_notifications(
                app_id, cluster, wanted, q.get("dataCenter"), self.state.hold_seconds,
                abandoned=self._client_gone)
        finally:
            self.state.long_poll_opened(app_id, -1)
        if ready is None:
            self._send(304)
        else:
            self._send(200, ready)

    @staticmethod
    def _parse_notifications(raw: str) -> Optional[Dict[str, int]]:
        try:
            entries = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(entries, list):
            return None
        wanted: Dict[str, int] = {}
        seen: Dict[str, str] = {}
        for entry in entries:
            if not isinstance(entry, dict):
                return None
            name, nid = entry.get("namespaceName"), entry.get("notificationId", -1)
            if not isinstance(name, str) or not name:
                continue
            if not isinstance(nid, int) or isinstance(nid, bool):
                return None
            name = strip_properties(name)
            lower = name.lower()
            if lower in seen:  # two spellings of one namespace: the smaller id wins (the later
                if nid <= wanted[seen[lower]]:  # one if equal), spelling and all (as Apollo)
                    del wanted[seen[lower]]
                    seen[lower] = name
                    wanted[name] = nid
                continue
            seen[lower] = name
            wanted[name] = nid
        return wanted or None

    def _client_gone(self) -> bool:
        """True when the long-polling client closed its connection (EOF is readable)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return False
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    # -- admin -----------------------------------------------------------------------------------------
    def _admin_stats(self) -> None:
        self._send(200, self.state.stats())

    def _admin_access_key(self, app_id: str, enable: bool) -> None:
        if not enable:
            self.state.set_secret(app_id, None)
            self._send(200, {"appId": app_id, "accessKey": "disabled"})
            return
        data = self._read_json()
        if data is None:
            return
        secret = data.get("secret")
        if not isinstance(secret, str) or not secret:
            self._error(400, "body needs a non-empty 'secret'")
            return
        self.state.set_secret(app_id, secret)
        self._send(200, {"appId": app_id, "accessKey": "enabled"})

    def _admin_services(self) -> None:
        data = self._read_json()
        if data is None:
            return
        urls = data.get("urls")
        if urls is not None and not (isinstance(urls, list) and
                                     all(isinstance(u, str) for u in urls)):
            self._error(400, "'urls' must be a list of URLs or null")
            return
        self.state.advertised = urls
        self._send(200, {"urls": urls})

    def _admin_delete(self, app_id: str, cluster: str, namespace: str, gray: bool) -> None:
        if gray:
            found = self.state.drop_gray(app_id, cluster, namespace)
        else:
            found = self.state.delete(app_id, cluster, namespace)
        self._send(200, {"deleted": True}) if found else self._error(404, "nothing to delete")

    def _admin_publish(self, app_id: str, cluster: str, namespace: str, gray: bool) -> None:
        self.state.count("admin", app_id)
        data = self._read_json()
        if data is None:
            return
        for kind, value in (("app id", app_id), ("cluster", cluster), ("namespace", namespace)):
            if not NAME_PATTERN.match(value):
                self._error(400, f"invalid {kind} {value!r}")
                return
        if "content" in data:
            if not isinstance(data["content"], str):
                self._error(400, "'content' must be a string")
                return
            configurations: Optional[Dict[str, str]] = {"content": data["content"]}
        else:
            configurations = data.get("configurations")
            if not isinstance(configurations, dict) or not all(
                    isinstance(v, str) for v in configurations.values()):
                self._error(400, "body needs 'configurations' (an object of strings) or 'content'")
                return
        assert configurations is not None
        try:
            if gray:
                labels, ips = data.get("labels") or [], data.get("ips") or []
                key, nid = self.state.publish_gray(app_id, cluster, namespace, configurations,
                                                   labels, ips)
            else:
                key, nid = self.state.publish(app_id, cluster, namespace, configurations)
        except ValueError as exc:
            self._error(400, str(exc))
            return
        self._send(200, {"appId": app_id, "cluster": cluster,
                         "namespaceName": self.state.canonical(app_id, namespace),
                         "releaseKey": key, "notificationId": nid, "gray": gray})

    def _admin_show(self, app_id: str, cluster: str, namespace: str) -> None:
        found = self.state.resolve(app_id, cluster, namespace)
        if found is None:
            self._error(404, "no release")
            return
        self._send(200, {"releaseKey": found[0].release_key, "cluster": found[1],
                         "configurations": dict(found[0].configurations)})


_NS = "apps/{app}/clusters/{cluster}/namespaces/{namespace}"

#: (method, path pattern, handler, fixed keyword arguments); "{x}" takes one segment, a
#: trailing "*" any rest. The first match wins.
ROUTES: List[Tuple[str, Tuple[str, ...], str, Dict[str, Any]]] = [
    (method, tuple(pattern.split("/")), handler, fixed)
    for method, pattern, handler, fixed in [
        ("GET", "services/config/*", "_services", {}),
        ("GET", "configs/{app}/{cluster}/{namespace}", "_configs", {}),
        ("GET", "configfiles/json/{app}/{cluster}/{namespace}", "_configfiles_json", {}),
        ("GET", "notifications/v2", "_notifications", {}),
        ("GET", "admin/stats", "_admin_stats", {}),
        ("GET", f"admin/{_NS}", "_admin_show", {}),
        ("POST", f"admin/{_NS}/releases", "_admin_publish", {"gray": False}),
        ("POST", f"admin/{_NS}/gray", "_admin_publish", {"gray": True}),
        ("DELETE", f"admin/{_NS}/gray", "_admin_delete", {"gray": True}),
        ("DELETE", f"admin/{_NS}", "_admin_delete", {"gray": False}),
        ("PUT", "admin/apps/{app}/accesskey", "_admin_access_key", {"enable": True}),
        ("DELETE", "admin/apps/{app}/accesskey", "_admin_access_key", {"enable": False}),
        ("PUT", "admin/services", "_admin_services", {}),
    ]
]


def _match(pattern: Tuple[str, ...], segments: List[str]) -> Optional[List[str]]:
    """The values of the pattern's "{x}" segments, or None if the path does not match."""
    if pattern[-1] == "*":
        pattern, segments = pattern[:-1], segments[:len(pattern) - 1]
    if len(pattern) != len(segments):
        return None
    params = []
    for want, got in zip(pattern, segments):
        if want.startswith("{"):
            params.append(got)
        elif want != got:
            return None
    return params


class DevServer:
    """The dev server, in a background thread: ``with DevServer(port=0) as srv: srv.url``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8080, hold_seconds: float = 60.0,
                 state: Optional[DevState] = None):
        self.state = state or DevState(hold_seconds)
        self._httpd = _HTTPServer((host, port), Handler, self.state)
        self._thread: Optional[threading.Thread] = None

    @property
    def address(self) -> Tuple[str, int]:
        host, port = self._httpd.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}"

    def start(self) -> DevServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="hotconf-devserver",
                                        kwargs={"poll_interval": 0.2}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._httpd.drop_connections()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> DevServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
