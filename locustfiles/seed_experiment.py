"""The seed article's experiment as a Locust run.

10 users start together; each sends a request, thinks a random 0-1 s, and
repeats for 10 s. Per user, the hit rate is the share of its requests served
by its most frequent environment; the run ends with the article's line:
`rates: 0.63,0.38,...`.

    locust -f locustfiles/seed_experiment.py --headless

With no --host it runs against the embedded emulator. Against AWS:
`--host https://<id>.lambda-url.<region>.on.aws/` (the deployed probe's
Function URL). -u, -r and -t change the users, spawn rate and duration.
"""
from locust import between

from lambda_affinity.users import AllAtOnce, FunctionUrlUser


class SeedUser(FunctionUrlUser):
    # the seed's `await sleep(Math.random() * 1000)` between requests
    wait_time = between(0, 1)


class SeedShape(AllAtOnce):
    users = 10
    duration_s = 10
