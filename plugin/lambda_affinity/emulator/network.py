"""The modelled network between a client and Lambda's front end.

On loopback a round trip takes a millisecond or two; over the internet it
takes tens. The round trip sets when each user's next request reaches the
platform, so it shifts how requests overlap and where they land: the
simulator models it, and the emulator does too so that the two agree. Each way
takes half of a round trip drawn from the config's `network_latency`, one
draw per leg as the simulator does: the request waits before it reaches the
front end (and so the platform model's placement), the reply waits once it
is ready, before it is sent. The waits are gevent sleeps: the loop keeps
serving every other request meanwhile.
"""

from __future__ import annotations

import random

import gevent

from ..platform.distributions import Distribution
from .wire import App, Request, Response


class ModelledNetwork(App):
    """Wraps a front end so each request and each reply crosses the modelled
    network. Paths under `exempt` (the emulator's own introspection) are not
    Lambda traffic and pass straight through."""

    def __init__(self, app: App, round_trip: Distribution, rng: random.Random, exempt: str | None = None) -> None:
        self.app = app
        self.max_body = app.max_body
        self.idle_timeout_s = app.idle_timeout_s
        self.round_trip = round_trip
        self.rng = rng
        self.exempt = exempt

    def _one_way(self) -> None:
        delay = self.round_trip(self.rng) / 2
        if delay > 0:  # sleep(0) would still yield to the loop for nothing
            gevent.sleep(delay)

    def handle(self, req: Request) -> Response:
        if self.exempt is not None and req.path.startswith(self.exempt):
            return self.app.handle(req)
        return self._cross(self.app.handle, req)

    def too_large(self, req: Request) -> Response:
        # a refused body crossed the network too, and so does the refusal
        return self._cross(self.app.too_large, req)

    def _cross(self, serve, req: Request) -> Response:
        self._one_way()
        resp = serve(req)
        self._one_way()
        return resp
