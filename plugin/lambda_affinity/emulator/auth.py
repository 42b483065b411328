"""Function URL authorization: the one hook `authorize`.

`NONE` is open. `AWS_IAM` verifies the request's SigV4 signature as AWS does
(lambda_affinity.aws.sigv4.verify: service `lambda`, the emulator's region, the
access keys of the config's `credentials`) and answers AWS's 403 otherwise.
The emulator has no IAM policies: a valid signature by a configured key is
allowed, as if that identity held lambda:InvokeFunctionUrl.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..aws.sigv4 import SigV4Error, verify
from .wire import Request, Response

LOOPBACK = frozenset(("127.0.0.1", "localhost", "[::1]"))


@dataclass
class Authority:
    """Where a Function URL listens: the Host a request signed for it must name.
    `names` empty: any host name (bound to every interface), the port still checked."""

    port: int = 0
    names: frozenset = field(default_factory=frozenset)

    @classmethod
    def of(cls, bound_host: str, port: int) -> Authority:
        if bound_host in ("", "0.0.0.0", "::"):
            return cls(port)
        loopback = bound_host in LOOPBACK or bound_host == "::1"
        return cls(port, LOOPBACK if loopback else frozenset((bound_host.lower(),)))

    def problem(self, host: str | None) -> str | None:
        """Why a Host header does not name this URL, or None when it does."""
        name, sep, port = (host or "").strip().lower().rpartition(":")
        if not sep or port != str(self.port) or (self.names and name not in self.names):
            return f"the signed Host {host!r} is not this Function URL's (port {self.port})"
        return None


def authorize(
    req: Request,
    auth_type: str,
    keys: Mapping[str, str],
    region: str,
    log: Callable[[str], None] | None = None,
    authority: Authority | None = None,
) -> Response | None:
    """None to let the request through, else the 403 to answer with.

    `keys`: {access key id: secret access key}. `log` gets the precise reason
    for a refusal (AWS's body says less); it never contains a secret.
    `authority`: this URL's; a signature made for another URL's host is
    refused as AWS refuses it (its own host goes into the string it signs).
    """
    if auth_type == "NONE":
        return None
    try:
        # The raw target and every header line as received: the signature
        # covers the percent-encoding and repeated headers exactly as sent.
        verify(req.method, req.target, req.header_list, req.body, keys, region=region)
        wrong_host = authority.problem(req.headers.get("host")) if authority is not None else None
        if wrong_host:
            raise SigV4Error("signature", wrong_host)
    except SigV4Error as err:
        if log is not None:
            why = str(err)
            if err.kind == "unknown_key" and not keys:
                why += " (the emulator's config lists no `credentials`)"
            log(f"403 {err.error_type}: {why}")
        return Response(err.status, list(err.headers.items()), err.body)
    return None
