"""The seed article's experiment as a Locust run.

10 users start together; each sends a request, thinks a random 0-1 s, and
repeats for 10 s. Per user, the hit rate is the share of its requests served
by its most frequent environment; the run ends with the article's line:
`rates: 0.63,0.38,...`.

    locust -f locustfiles/seed_experiment.py --headless

With no --host it runs against the embedded emulator, configured by
seed_emulator.yaml beside this file: the seed's conditions (an internet round
trip, a few ms on the environment per call), the ones the simulator is
calibrated with, so both give a mean near the seed's 0.43.
`--affinity-emulator-config` picks another file. Against AWS:
`--host https://<id>.lambda-url.<region>.on.aws/` (the deployed probe's
Function URL). -u, -r and -t change the users, spawn rate and duration.
"""

import os

from locust import between, events

from lambda_affinity.users import AllAtOnce, FunctionUrlUser

SEED_EMULATOR_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seed_emulator.yaml")


@events.init_command_line_parser.add_listener
def _seed_emulator_by_default(parser):
    # A default, not a value: the command line, LOCUST_AFFINITY_EMULATOR_CONFIG
    # and locust.conf still win. argparse keeps it for the option whether the
    # plugin has added the option to this parser yet or not.
    parser.set_defaults(affinity_emulator_config=SEED_EMULATOR_CONFIG)


class SeedUser(FunctionUrlUser):
    # the seed's `await sleep(Math.random() * 1000)` between requests
    wait_time = between(0, 1)


class SeedShape(AllAtOnce):
    users = 10
    duration_s = 10
