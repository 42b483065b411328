"""Bursty sessions: the activity pattern an in-memory session cache is for.

Each user works in sessions: a burst of requests a short think apart, then a
long, random pause before the next session (exponential, mean 20 s). Compare
its warm-cache rate with the seed experiment's steady trickle:

    locust -f locustfiles/bursty_sessions.py --headless -u 50 -r 50 -t 2m

The same scenario in virtual time, at any scale:
    lambda-affinity simulate --users 50 --duration 120 --burst 8 --think 0.2:1 --gap exp:20
"""

import random

from lambda_affinity.users import FunctionUrlUser

BURST = 8  # requests per session
THINK_S = (0.2, 1.0)  # uniform think time inside a session
GAP_MEAN_S = 20.0  # mean pause between sessions


class BurstyUser(FunctionUrlUser):
    def on_start(self):
        self.left_in_session = BURST

    def wait_time(self):
        self.left_in_session -= 1
        if self.left_in_session > 0:
            return random.uniform(*THINK_S)
        self.left_in_session = BURST
        return random.expovariate(1.0 / GAP_MEAN_S)
