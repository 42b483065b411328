"""The Locust users, by the short path locustfiles import them from (`from lambda_affinity.users import ...`).

They live in locust_plugin/users.py; importing them loads the plugin.
"""

from .locust_plugin.users import AllAtOnce, FunctionUrlUser, InvokeUser, SignerUnavailable, lambda_client

__all__ = ["AllAtOnce", "FunctionUrlUser", "InvokeUser", "SignerUnavailable", "lambda_client"]
