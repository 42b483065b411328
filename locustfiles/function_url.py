"""Probe a Function URL: per-user environment reuse and warm-cache hits.

    locust -f locustfiles/function_url.py --headless -u 50 -r 50 -t 60s \
        --host https://<id>.lambda-url.<region>.on.aws/ --affinity-json affinity.json

With no --host it runs against the embedded emulator. Add --affinity-sigv4
when the URL's auth type is AWS_IAM.
"""

from locust import between

from lambda_affinity.users import FunctionUrlUser


class FunctionUrlProbe(FunctionUrlUser):
    wait_time = between(0, 1)
