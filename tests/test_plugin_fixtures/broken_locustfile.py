"""Calls every fault of the broken function, in a fixed order, through both users.

Hosts come from the environment (set by tests/test_plugin_faults.py, which
starts the emulator): BROKEN_URL, THROTTLED_URL, EMULATOR_ENDPOINT.
"""
import os

from locust import constant, task

from lambda_affinity.users import FunctionUrlUser, InvokeUser

URL_FAULTS = ("not-json", "no-env-id", "error-500", "raise", "ok")
INVOKE_FAULTS = ("number", "no-env-id", "bad-cold", "raise", "ok")


class BrokenUrl(FunctionUrlUser):
    host = os.environ["BROKEN_URL"]
    wait_time = constant(0.02)

    @task
    def probe(self):
        for mode in URL_FAULTS:
            self.call_probe(path=mode, name=f"url {mode}")
        self.call_probe(path=os.environ["THROTTLED_URL"], name="url throttled")


class BrokenInvoke(InvokeUser):
    host = f"lambda://broken?endpoint_url={os.environ['EMULATOR_ENDPOINT']}"
    wait_time = constant(0.02)

    @task
    def probe(self):
        for mode in INVOKE_FAULTS:
            self.invoke_probe(payload=f'{{"mode": "{mode}"}}'.encode(), name=f"invoke {mode}")
        self.invoke_probe(function="throttled", name="invoke throttled")
