"""The read-only introspection routes, for tests and the Locust plugin.

GET /_emulator/environments: every live environment (id, function, state,
invocations, age, idle time, pid), the model's counters and the model itself
(what a run's `reproduce` records).
GET /_emulator/health: {"status": "ok"} while serving.
"""

from __future__ import annotations

import dataclasses
import json
import time

from .wire import Response

PREFIX = "/_emulator/"
ENVIRONMENTS = PREFIX + "environments"
HEALTH = PREFIX + "health"


def introspect(service, method: str, path: str) -> Response:
    if method != "GET":
        return _json(405, {"message": f"{method} not allowed: the introspection endpoint is read-only"})
    if path == ENVIRONMENTS:
        return _json(200, describe(service))
    if path == HEALTH:
        return _json(200, {"status": "stopping" if service.stopping else "ok"})
    return _json(404, {"message": f"no such introspection route {path} (try {ENVIRONMENTS})"})


def describe(service) -> dict:
    """The InvocationService's live environments and the model's counters, as JSON."""
    now = time.monotonic()
    p = service.platform
    envs = [env.handle.describe(now) if env.handle is not None else env.describe(now) for env in p.environments()]
    return {
        "environments": envs,
        "functions": {
            name: {
                "in_flight": p.in_flight(name),
                "idle": p.idle_count(name),
                "live": len(p.environments(name)),
                "provisioned": p.functions[name].provisioned_concurrency,
            }
            for name in service.functions
        },
        "cold_starts": p.cold_starts,
        "warm_starts": p.warm_starts,
        "new_environment_calls": p.new_environment_calls,
        "spillover": p.spillover,
        "retired": dict(p.retired),
        "throttles": dict(p.counter.throttles),
        **service.stats,
        "model": dataclasses.asdict(service.config.model),
        "network_latency": service.config.network_latency,
        "service_time": service.config.service_time,
    }


def _json(status: int, doc: dict) -> Response:
    return Response(status, [("Content-Type", "application/json")], json.dumps(doc).encode())
