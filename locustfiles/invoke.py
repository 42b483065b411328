"""Probe a function through the Invoke API (boto3).

    locust -f locustfiles/invoke.py --headless -u 50 -r 50 -t 60s --host lambda://lambda-affinity-probe

Region and credentials come from boto3's usual chain. For LocalStack or a
separately started emulator, add --affinity-endpoint-url http://localhost:4566
(or put ?endpoint_url=... on the host). With no --host it runs against the
embedded emulator's Invoke API.
"""

from locust import between

from lambda_affinity.users import InvokeUser


class InvokeProbe(InvokeUser):
    wait_time = between(0, 1)
