"""Function URL authorization: the one hook `authorize`.

`NONE` is open. `AWS_IAM` verifies the request's SigV4 signature as AWS does
(lambda_affinity.sigv4.verify: service `lambda`, the emulator's region, the
access keys of the config's `credentials`) and answers AWS's 403 otherwise.
The emulator has no IAM policies: a valid signature by a configured key is
allowed, as if that identity held lambda:InvokeFunctionUrl.
"""
from __future__ import annotations

from typing import Callable, Mapping

from ..sigv4 import SigV4Error, verify
from .wire import Request, Response


def authorize(req: Request, auth_type: str, keys: Mapping[str, str], region: str,
              log: Callable[[str], None] | None = None) -> Response | None:
    """None to let the request through, else the 403 to answer with.

    `keys`: {access key id: secret access key}. `log` gets the precise reason
    for a refusal (AWS's body says less); it never contains a secret.
    """
    if auth_type == "NONE":
        return None
    try:
        # The raw target and every header line as received: the signature
        # covers the percent-encoding and repeated headers exactly as sent.
        verify(req.method, req.target, req.header_list, req.body, keys, region=region)
    except SigV4Error as err:
        if log is not None:
            why = str(err)
            if err.kind == "unknown_key" and not keys:
                why += " (the emulator's config lists no `credentials`)"
            log(f"403 {err.error_type}: {why}")
        return Response(err.status, list(err.headers.items()), err.body)
    return None
