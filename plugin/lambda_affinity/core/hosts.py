"""The hosts a run can target, and which user class talks to which. Pure: no
Locust import, no I/O.

  (none)                  the embedded emulator with the bundled probe
  http(s)://...           a Function URL (FunctionUrlUser)
  lambda://NAME           the Invoke API (InvokeUser); NAME may be an ARN or
                          name:alias; `?endpoint_url=...&region=...` optional
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote

from ..errors import LambdaAffinityError


class PluginConfigError(LambdaAffinityError, ValueError):
    """The run is set up in a way the plugin cannot honour; said before it starts."""


class Transport(str, enum.Enum):
    """How a user class reaches the function (its `affinity_transport`)."""

    FUNCTION_URL = "function_url"
    INVOKE = "invoke"


_FUNCTION_REF = re.compile(r"^[A-Za-z0-9_.:-]{1,170}$")


@dataclass(frozen=True)
class LambdaTarget:
    """A parsed `lambda://FUNCTION[?endpoint_url=...&region=...]` host."""

    function: str
    endpoint_url: str | None = None
    region: str | None = None

    def host(self) -> str:
        params = (("endpoint_url", self.endpoint_url), ("region", self.region))
        query = "&".join(f"{k}={v}" for k, v in params if v)
        return f"lambda://{self.function}" + (f"?{query}" if query else "")


def parse_lambda_host(host: str) -> LambdaTarget:
    if not host.startswith("lambda://"):
        raise PluginConfigError(f"not a lambda:// host: {host!r}")
    name, _, query = host[len("lambda://") :].partition("?")
    name = unquote(name).rstrip("/")
    if not _FUNCTION_REF.match(name):
        raise PluginConfigError(
            f"host {host!r}: lambda:// needs a function name, name:alias or function ARN "
            "(letters, digits, - _ . :), e.g. lambda://my-probe or lambda://my-probe:live"
        )
    params = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(params) - {"endpoint_url", "region"})
    if unknown:
        raise PluginConfigError(f"host {host!r}: unknown parameter {', '.join(unknown)} (known: endpoint_url, region)")
    endpoint = params.get("endpoint_url") or None
    if endpoint is not None and not endpoint.startswith(("http://", "https://")):
        raise PluginConfigError(f"host {host!r}: endpoint_url must be an http(s) URL")
    return LambdaTarget(name, endpoint, params.get("region") or None)


def host_kind(host: str | None) -> Transport | None:
    """The transport a host needs; None for no host; PluginConfigError for a
    host that is neither form."""
    if not host:
        return None
    if host.startswith(("http://", "https://")):
        return Transport.FUNCTION_URL
    if host.startswith("lambda://"):
        return Transport.INVOKE
    raise PluginConfigError(
        f"host {host!r} is neither http(s):// (a Function URL) nor lambda://FUNCTION_NAME (the Invoke API)"
    )


_HOST_HELP = {
    Transport.FUNCTION_URL: "an http(s):// Function URL (or no --host for the embedded emulator)",
    Transport.INVOKE: "lambda://FUNCTION_NAME (or no --host for the embedded emulator)",
}
_OTHER_USER = {
    Transport.INVOKE: "; use an InvokeUser (locustfiles/invoke.py) for lambda:// hosts",
    Transport.FUNCTION_URL: "; use a FunctionUrlUser (locustfiles/function_url.py) for Function URLs",
}


def transport_of(user_class: type) -> Transport | None:
    """The transport of one of our user classes; None for any other class."""
    value = getattr(user_class, "affinity_transport", None)
    return Transport(value) if value is not None else None


def check_host(user_class: type, host: str | None) -> None:
    """Refuse a host the user class cannot talk to, before any user starts."""
    transport = transport_of(user_class)
    if transport is None:
        return
    kind = host_kind(host)
    if kind is None:
        return
    if kind is not transport:
        raise PluginConfigError(f"{user_class.__name__} needs {_HOST_HELP[transport]}, got {host!r}{_OTHER_USER[kind]}")
    if kind is Transport.INVOKE:
        parse_lambda_host(host or "")
