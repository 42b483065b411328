"""The read-only introspection routes, for tests and the Locust plugin.

GET /_emulator/environments: every live environment (id, function, state,
invocations, age, idle time, pid) and the model's counters.
GET /_emulator/health: {"status": "ok"} while serving.
"""

from __future__ import annotations

import json

from .wire import Response

PREFIX = "/_emulator/"
ENVIRONMENTS = PREFIX + "environments"
HEALTH = PREFIX + "health"


def introspect(service, method: str, path: str) -> Response:
    if method != "GET":
        return _json(405, {"message": f"{method} not allowed: the introspection endpoint is read-only"})
    if path == ENVIRONMENTS:
        return _json(200, service.describe())
    if path == HEALTH:
        return _json(200, {"status": "stopping" if service.stopping else "ok"})
    return _json(404, {"message": f"no such introspection route {path} (try {ENVIRONMENTS})"})


def _json(status: int, doc: dict) -> Response:
    return Response(status, [("Content-Type", "application/json")], json.dumps(doc).encode())
