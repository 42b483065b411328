"""What the control-plane operations change: each function's $LATEST and its published versions, with the
metadata GetFunctionConfiguration reports (CodeSha256, RevisionId, LastModified...), and the deploy itself.

An update of $LATEST (code or configuration) replaces the function's config in the invocation service and
deploys it in the platform model: its idle environments retire now, busy ones once their call ends, and every
later call starts a new environment running the new code (docs/model.md, "Deploys"). A published version is a
function of its own in the model (`name:N`), so calls to it start environments of their own, as on AWS.
"""

from __future__ import annotations

import dataclasses
import math
import time
import uuid
from dataclasses import dataclass

from .code_store import Code, folder_code
from .config import FunctionConfig

LATEST = "$LATEST"


@dataclass(frozen=True)
class Published:
    """$LATEST as it now stands, or one published version: its config, code and what AWS reports of it."""

    fn: FunctionConfig
    code: Code
    description: str
    revision_id: str
    last_modified: str

    def same_as(self, other: Published) -> bool:
        """The same code and configuration (PublishVersion then makes no new version)."""
        mine = dataclasses.replace(self.fn, version=LATEST)
        return self.code.sha256 == other.code.sha256 and mine == dataclasses.replace(other.fn, version=LATEST)


def function_key(name: str, qualifier: str | None) -> str:
    """Where an Invoke of `name` with `qualifier` goes: `name` ($LATEST) or `name:N` (a version)."""
    return name if qualifier in (None, LATEST) else f"{name}:{qualifier}"


def last_modified(now: float | None = None) -> str:
    """AWS's LastModified form: 2026-12-03T13:06:04.000+0000."""
    now = time.time() if now is None else now
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}+0000"


def revision_id() -> str:
    return str(uuid.uuid4())


class Deployments:
    """Each function's $LATEST and versions. `service` is the InvocationService that runs them."""

    def __init__(self, service) -> None:
        self.service = service
        self._latest: dict[str, Published] = {}
        self._versions: dict[str, dict[str, Published]] = {}

    def latest(self, name: str) -> Published:
        """$LATEST of a configured function (its folder digested on first need)."""
        pub = self._latest.get(name)
        if pub is None:
            fn = self.service.functions[name]
            pub = self._latest[name] = Published(fn, folder_code(fn.code), "", revision_id(), last_modified())
        return pub

    def version(self, name: str, qualifier: str | None) -> Published | None:
        if qualifier in (None, LATEST):
            return self.latest(name)
        return self._versions.get(name, {}).get(qualifier)

    def update(self, name: str, fn: FunctionConfig, code: Code | None = None, description: str | None = None) -> None:
        """$LATEST becomes `fn` (and `code`): later calls go to new environments; old ones drain and retire."""
        old = self.latest(name)
        if code is not None:
            fn = dataclasses.replace(fn, code=code.folder)
        self._latest[name] = Published(
            fn,
            code if code is not None else old.code,
            old.description if description is None else description,
            revision_id(),
            last_modified(),
        )
        self.service.deploy(name, fn)
        self._prune()

    def _prune(self) -> None:
        """Uploads no environment runs any more, and no version or $LATEST names, leave the disk."""
        keep = {pub.code.folder for pub in self._latest.values()}
        keep |= {pub.code.folder for versions in self._versions.values() for pub in versions.values()}
        keep |= {env.handle.fn.code for env in self.service.platform.environments() if env.handle is not None}
        self.service.code_store.prune(keep)

    def publish(self, name: str, description: str | None = None) -> Published:
        """A version from $LATEST as it stands; the newest one again when nothing changed since (as AWS does)."""
        latest = self.latest(name)
        versions = self._versions.setdefault(name, {})
        if versions:
            newest = versions[max(versions, key=int)]
            if newest.same_as(latest):
                return newest
        number = str(len(versions) + 1)
        fn = dataclasses.replace(latest.fn, version=number)
        pub = Published(
            fn, latest.code, latest.description if description is None else description, revision_id(), last_modified()
        )
        versions[number] = pub
        self.service.add_version(fn)
        return pub

    def configuration(self, pub: Published, status: str = "Successful") -> dict:
        """The FunctionConfiguration document (botocore's shape) of $LATEST or a version."""
        fn, service = pub.fn, self.service
        arn = service.arn(fn.name) + ("" if fn.version == LATEST else f":{fn.version}")
        doc = {
            "FunctionName": fn.name,
            "FunctionArn": arn,
            "Runtime": fn.runtime,
            "Role": f"arn:aws:iam::{service.config.account_id}:role/lambda-affinity-emulator",
            "Handler": fn.handler,
            "CodeSize": pub.code.size,
            "Description": pub.description,
            "Timeout": max(1, math.ceil(fn.timeout)),
            "MemorySize": fn.memory,
            "LastModified": pub.last_modified,
            "CodeSha256": pub.code.sha256,
            "Version": fn.version,
            "TracingConfig": {"Mode": "PassThrough"},
            "RevisionId": pub.revision_id,
            "State": "Active",
            "LastUpdateStatus": status,
            "PackageType": "Zip",
            "Architectures": ["x86_64"],
            "EphemeralStorage": {"Size": 512},
            "SnapStart": {"ApplyOn": "None", "OptimizationStatus": "Off"},
            "LoggingConfig": {"LogFormat": "Text", "LogGroup": f"/aws/lambda/{fn.name}"},
        }
        if fn.environment:  # AWS leaves Environment out when a function has no variables
            doc["Environment"] = {"Variables": dict(fn.environment)}
        return doc
