"""Locust users that call a probe Lambda and record which environment served
each call.

    from locust import between
    from lambda_affinity.locust_plugin.users import FunctionUrlUser

    class Probe(FunctionUrlUser):
        wait_time = between(0, 1)

`FunctionUrlUser` (HTTP, on FastHttpUser) targets a Function URL; `InvokeUser`
(boto3) targets `lambda://FUNCTION_NAME`. With no host at all the plugin
starts the embedded emulator and points both at it. Each Locust user keeps a
stable session key, sent with every call, so the probe can tell whether this
user's session was already cached in the environment that served it.

Any other user records replies with `record_reply(self, body)`; see
lambda_affinity.locust_plugin.record_reply.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import time
from typing import Any
from urllib.parse import urlsplit

import gevent
from locust import LoadTestShape, User, task
from locust.contrib.fasthttp import FastHttpUser
from locust.exception import LocustError, StopUser

from ..core.reply import (
    EMULATOR_ERROR_HEADER,
    Observation,
    ProbeReplyError,
    function_error,
    http_failure,
    invoke_failure,
    parse_reply,
    url_function_error,
)
from . import (
    PluginConfigError,
    adapter,
    check_host,
    parse_lambda_host,
    plugin_for,
    record_invalid,
    record_reply,
)
from .plugin import SESSION_HEADER, outcome_name

__all__ = [
    "FunctionUrlUser",
    "InvokeUser",
    "AllAtOnce",
    "record_reply",
    "record_invalid",
    "ProbeReplyError",
    "Observation",
]


def _drop_default_task(cls, default) -> None:
    """The built-in probe task is a default: Locust adds a base class's tasks
    to a subclass's own, so a subclass that declares tasks would otherwise
    also run the default one."""
    inherited = [t for base in cls.__bases__ for t in (getattr(base, "tasks", None) or [])]
    if len(cls.tasks) > len(inherited):
        cls.tasks = [t for t in cls.tasks if t is not default]


def _conclude(
    user,
    request_type: str,
    name: str,
    start_time: float,
    elapsed_ms: float,
    body: bytes,
    error: ProbeReplyError | None,
    response,
    url: str,
) -> Observation | None:
    """The end of every call, for both users: parse the reply unless the call
    already failed, tally it for the user, report it to Locust's stats."""
    obs = None
    if error is None:
        try:
            obs = parse_reply(body)
        except ProbeReplyError as exc:
            error = exc
    user._plugin.tally(user.affinity_user, user.affinity_session, obs, start_time, start_time + elapsed_ms / 1000)
    if obs is not None and user._split:
        name = outcome_name(name, obs)
    user._fire(
        request_type=request_type,
        name=name,
        response_time=elapsed_ms,
        response_length=len(body),
        exception=error,
        context=user.context(),
        response=response,
        start_time=start_time,
        url=url,
    )
    return obs


class _StopsTracked:
    """Tells the plugin when Locust stops a user (on a worker mid-run, its row
    is a partial user: see AffinityPlugin.user_stopping)."""

    _plugin: Any

    def stop(self, force: bool = False):
        plugin = getattr(self, "_plugin", None)
        if plugin is not None:
            plugin.user_stopping(self)
        return super().stop(force=force)  # type: ignore[misc]


def _check_host(user) -> None:
    try:
        check_host(type(user), user.host)
    except PluginConfigError as exc:
        raise LocustError(str(exc)) from None


class FunctionUrlUser(_StopsTracked, FastHttpUser):
    """Calls a Function URL and records every reply.

    Override `probe_path` (appended to the host), `probe_method` or
    `probe_name` (the row in Locust's stats), or call `call_probe()` from
    your own tasks (declaring tasks replaces the default probe task).
    `self.client` is FastHttpUser's client as usual.

    `call_probe` sends through the same client (its connection pool, timeouts
    and settings) but fires Locust's request event itself rather than going
    through `client.request(..., catch_response=True)`: that wrapper's
    per-request bookkeeping costs more CPU than parsing and recording the
    reply, and a load generator's CPU is what bounds its rate.
    """

    abstract = True
    affinity_transport = "function_url"
    affinity_user: str  # set by the plugin (AffinityPlugin.attach): the row key
    affinity_session: str  # and the session key sent to the function
    probe_path = ""
    probe_method = "GET"
    probe_name = "probe"  # on the embedded emulator, the function's name (embedded.name_rows)

    def __init__(self, environment) -> None:
        _check_host(self)
        super().__init__(environment)
        self._plugin = plugin_for(environment)
        self._plugin.attach(self)
        self._probe_headers = {SESSION_HEADER: self.affinity_session}
        self._fire = environment.events.request.fire
        options = self._plugin.options
        self._split = options.affinity_split_stats
        self._signer = None
        if options.affinity_sigv4:
            signer = _url_signer(self.host or "")
            if isinstance(signer, SignerUnavailable):
                signer.report(environment)
            self._signer = signer

    @task
    def probe(self) -> None:
        self.call_probe()

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        _drop_default_task(cls, FunctionUrlUser.probe)

    def call_probe(
        self, path: str | None = None, name: str | None = None, body: bytes | None = None
    ) -> Observation | None:
        """One call; returns the Observation, or None after reporting a failure.
        `path` is appended to the host, or a full http(s) URL used as is."""
        if isinstance(self._signer, SignerUnavailable):
            raise StopUser()  # said once already; never send unsigned calls instead
        session = self.client
        path = self.probe_path if path is None else path
        url = path if path.startswith(("http://", "https://")) else (session.base_url or "") + path
        base = name or adapter.request_name(session) or self.probe_name
        method = self.probe_method
        headers = self._probe_headers
        if self._signer is not None:
            headers = self._signer(method, url, headers, body)
        start_time = time.time()
        started = time.perf_counter()
        error = None
        content = b""
        status = 0
        resp = None
        try:
            resp = adapter.raw_urlopen(session, url, method, headers, body)
            content = resp.content
            status = resp.status_code
        except adapter.FAILURE_EXCEPTIONS as exc:  # what FastHttpSession counts as a failed request
            resp = getattr(exc, "response", None)
            if resp is not None:  # an HTTP error status: the body says why
                status = resp.status_code
                try:
                    content = resp.content or b""
                except adapter.FAILURE_EXCEPTIONS:
                    content = b""
            else:
                error = ProbeReplyError(http_failure(0, None, exc))
        elapsed_ms = (time.perf_counter() - started) * 1000
        if error is None and not 200 <= status < 300:
            if status == 403:  # most likely an AWS_IAM URL: say what to do
                from ..aws.sigv4 import forbidden_hint

                error = ProbeReplyError(forbidden_hint(content, self._signer is not None))
            else:
                # the emulator's Function URL names the function's error beside AWS's bare 502
                got = getattr(resp, "headers", None)
                said = url_function_error(got.get(EMULATOR_ERROR_HEADER) if got is not None else None)
                error = ProbeReplyError(said or http_failure(status, content))
        return _conclude(self, method, base, start_time, elapsed_ms, content, error, resp, url)


class SignerUnavailable:
    """Why requests cannot be signed (no credentials, no region). Said once per
    process, which then quits with exit code 2: every user failing alike
    would only repeat it."""

    def __init__(self, message: str) -> None:
        self.message = message
        self.reported = False

    def report(self, environment) -> None:
        if self.reported:
            return
        self.reported = True
        logging.getLogger("lambda_affinity").error(self.message)
        environment.process_exit_code = 2
        if environment.runner is not None:
            gevent.spawn(environment.runner.quit)


# One signer per process and host: boto3's credential chain costs ~13 ms a
# lookup, which per user would stall the event loop for seconds at -u 1000.
_SIGNERS: dict = {}


def _url_signer(host: str):
    signer = _SIGNERS.get(host)
    if signer is None:
        signer = _SIGNERS[host] = _build_signer(host)
    return signer


def _is_loopback(hostname: str) -> bool:
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _build_signer(host: str):
    """SigV4 for AWS_IAM Function URLs: credentials from boto3's chain; the
    region from the URL (on AWS it must be the URL's), else boto3's, else
    us-east-1 for a local endpoint (the emulator's default)."""
    from ..aws.sigv4 import REGION_SETTINGS, chain_credentials, region_from_function_url, sign_headers

    try:
        credentials, chain_region = chain_credentials()
    except ValueError as exc:
        return SignerUnavailable(f"--affinity-sigv4: {exc}")
    local = _is_loopback(urlsplit(host).hostname or "")
    region = region_from_function_url(host) or chain_region or ("us-east-1" if local else None)
    if region is None:
        return SignerUnavailable(f"--affinity-sigv4: no AWS region to sign for: {host} names none; {REGION_SETTINGS}")

    def sign(method, url, headers, body):
        return {**headers, **sign_headers(method, url, headers, body, credentials, region)}

    return sign


# -- Invoke API ----------------------------------------------------------------------

_CLIENTS: dict = {}


def lambda_client(
    endpoint_url: str | None,
    region: str | None,
    pool_size: int = 10,
    connect_timeout: float = 5.0,
    read_timeout: float = 60.0,
):
    """One boto3 Lambda client per (endpoint, region), shared by the process's
    Invoke users: botocore clients are safe to share, and under gevent one
    client with a pool sized to the users is far cheaper than a client each
    (creating one costs tens of ms of CPU). Retries are off: a throttle is a
    measurement, not something to hide."""
    key = (endpoint_url, region)
    client = _CLIENTS.get(key)
    if client is not None:
        return client
    import boto3
    from botocore.config import Config

    from ..aws.sigv4 import REGION_SETTINGS, chain_region, check_region

    session = boto3.session.Session()
    try:
        if region is not None:
            check_region(region, "the lambda:// host's ?region=")
        else:
            resolved = chain_region()  # AWS CLI v2's order: boto3 alone ignores AWS_REGION
            region = resolved.name if resolved else ("us-east-1" if endpoint_url else None)
    except ValueError as exc:
        raise PluginConfigError(str(exc)) from None
    if region is None:
        raise PluginConfigError(
            f"no AWS region for the Invoke API: add ?region=... to the lambda:// host, or {REGION_SETTINGS}"
        )
    extra = {}
    if session.get_credentials() is None:
        if not endpoint_url:
            from ..aws.sigv4 import chain_session

            try:
                chain_session()
            except ValueError as exc:
                raise PluginConfigError(str(exc)) from None
        # a local endpoint (the emulator, LocalStack) needs a signature, not real keys
        extra = {"aws_access_key_id": "lambda-affinity", "aws_secret_access_key": "local"}
    config = Config(
        max_pool_connections=max(10, pool_size),
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"total_max_attempts": 1, "mode": "standard"},
        tcp_keepalive=True,
    )
    client = session.client("lambda", region_name=region, endpoint_url=endpoint_url, config=config, **extra)
    _CLIENTS[key] = client
    return client


def _pool_size(users: int | None) -> int:
    return min(int(users or 10), 1000)


class InvokeUser(_StopsTracked, User):
    """Invokes a function through the Invoke API (boto3) and records every reply.

    The host is `lambda://FUNCTION_NAME` (a name, name:alias or ARN), with
    optional `?endpoint_url=...&region=...`; `--affinity-endpoint-url` sets
    the endpoint for all. The payload is `{"session": KEY}`; override
    `payload()` to send your own (keep the session in it for cache status).
    """

    abstract = True
    affinity_transport = "invoke"
    affinity_user: str
    affinity_session: str
    probe_name: str | None = None  # default: the function name
    connect_timeout = 5.0
    read_timeout = 60.0

    def __init__(self, environment) -> None:
        super().__init__(environment)
        if not self.host:
            raise LocustError(
                f"{type(self).__name__} needs a host: lambda://FUNCTION_NAME (or no --host at all for the "
                "embedded emulator)"
            )
        _check_host(self)
        try:
            target = parse_lambda_host(self.host)
            options = plugin_for(environment).options
            endpoint = target.endpoint_url or options.affinity_endpoint_url
            self.lambda_client = lambda_client(
                endpoint, target.region, _pool_size(options.num_users), self.connect_timeout, self.read_timeout
            )
        except PluginConfigError as exc:
            raise LocustError(str(exc)) from None
        self.function_name = target.function
        self._plugin = plugin_for(environment)
        self._plugin.attach(self)
        self._payload = self.payload()
        self._fire = environment.events.request.fire
        self._split = options.affinity_split_stats

    @classmethod
    def affinity_preflight(cls, host: str, options: Any) -> None:
        """Before any user starts (master or standalone): the lambda:// host
        has a region and credentials, else PluginConfigError (one line at
        start, not a traceback per user)."""
        target = parse_lambda_host(host)
        lambda_client(
            target.endpoint_url or options.affinity_endpoint_url,
            target.region,
            _pool_size(options.num_users),
            cls.connect_timeout,
            cls.read_timeout,
        )

    def payload(self) -> bytes:
        return json.dumps({"session": self.affinity_session}).encode()

    @task
    def probe(self) -> None:
        self.invoke_probe()

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        _drop_default_task(cls, InvokeUser.probe)

    def invoke_probe(
        self, payload: bytes | None = None, name: str | None = None, function: str | None = None
    ) -> Observation | None:
        """One invocation (of `function`, default the host's); returns the
        Observation, or None after reporting a failure."""
        from botocore.exceptions import BotoCoreError, ClientError

        function = function or self.function_name
        base = name or self.probe_name or function
        start_time = time.time()
        started = time.perf_counter()
        body = b""
        error = None
        try:
            resp = self.lambda_client.invoke(
                FunctionName=function, Payload=self._payload if payload is None else payload
            )
            body = resp["Payload"].read()
            kind = resp.get("FunctionError")
            if kind:
                error = ProbeReplyError(function_error(kind, body))
        except ClientError as exc:
            err = exc.response.get("Error", {})
            error = ProbeReplyError(
                invoke_failure(
                    err.get("Code", "ClientError"),
                    exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode"),
                    err.get("Message") or err.get("message"),
                    exc.response.get("Reason") or err.get("Reason"),
                )
            )
        except BotoCoreError as exc:
            error = ProbeReplyError(f"no reply: {type(exc).__name__}: {exc}")
        elapsed_ms = (time.perf_counter() - started) * 1000
        return _conclude(self, "invoke", base, start_time, elapsed_ms, body, error, None, self.host or "")


class AllAtOnce(LoadTestShape):
    """Every user starts at t=0 in one spawn batch (the seed's Promise.all)
    and the test stops after `duration_s`. Subclass it in a locustfile and set
    `users` and `duration_s`; -u, -r and -t override them when given."""

    abstract = True
    use_common_options = True
    users = 10
    duration_s = 10.0

    def tick(self):
        assert self.runner is not None, "Locust sets a shape's runner before it ticks"
        given = plugin_for(self.runner.environment).given
        users = given.num_users or self.users
        rate = given.spawn_rate or users  # rate >= users: a single batch
        duration = given.run_time or self.duration_s
        if self.get_run_time() >= duration:
            return None
        return users, rate
