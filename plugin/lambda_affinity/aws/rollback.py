"""What a deploy run changed, as typed records, and how a failed run undoes its own part of it.

Each Change says what kind of change it was; the kind alone decides whether a rollback undoes it
(what this run created or added, and a switch of the function's role) or keeps it (updates to what was
there before). Its message is only what deploy prints.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .errors import Step, aws_step


class Kind(enum.Enum):
    CREATED = "created"  # a resource this run made
    ADDED = "added"  # a statement this run added to the function's resource policy
    ROLE_CHANGED = "role changed"  # the function's execution role switched to another
    UPDATED = "updated"  # code or settings of what was there, changed in place
    REMOVED = "removed"  # taken away (a stale policy statement; destroy)

    @property
    def undone_by_rollback(self) -> bool:
        return self in (Kind.CREATED, Kind.ADDED, Kind.ROLE_CHANGED)


@dataclass(frozen=True)
class Undo:
    """How a rollback undoes a change: the call, the permission it needs, the command that does it by hand."""

    call: Callable[[], object]
    action: str
    command: str


@dataclass(frozen=True)
class Change:
    """One change a deploy (or destroy) made.

    `resource`: what it changed, as the rollback report names it. `message`: what deploy prints; empty
    for a part of the change before it that is not listed on its own (the role's policy attachment).
    `undo`: None where there is nothing to undo on its own (kept, or deleted with the new function).
    """

    kind: Kind
    resource: str
    message: str
    undo: Undo | None = None


def roll_back(changes: Sequence[Change], name: str, destroy_command: str) -> str:
    """Undo, newest first, the changes whose kind a rollback undoes; the report of what it did.

    When setting the function's role back fails, what was created before it stays: the function
    still uses that role, so it must not be deleted.
    """
    undone, left = [], []
    blocked = None
    for change in reversed(changes):
        if not change.kind.undone_by_rollback or change.undo is None:
            continue
        if blocked is not None:
            left.append((change.resource, blocked, change.undo.command))
            continue
        try:
            with aws_step(Step(f"removing {change.resource}", change.undo.action)):
                change.undo.call()
            undone.append(change.resource)
        except (Exception, KeyboardInterrupt) as exc:  # keep going: remove all that can be removed
            left.append((change.resource, str(exc), change.undo.command))
            if change.kind is Kind.ROLE_CHANGED:
                blocked = f"kept: {name} still uses it, as {change.resource} failed"
    kept = [c.message for c in changes if not c.kind.undone_by_rollback and c.message]
    return rollback_report(undone, left, kept, destroy_command)


def rollback_report(undone: list, left: list, kept: list, destroy_command: str) -> str:
    """What a failed deploy did about what it had created.

    `undone`: what it removed; `left`: (what, why, command) it could not
    remove; `kept`: changes to what existed before the run, which stay.
    """
    lines = []
    if undone:
        lines.append(f"Rolled back: removed {', '.join(undone)}.")
    if left:
        lines.append("Could not remove, so left in the account:")
        for what, why, command in left:
            lines += [f"  {what} ({why})", f"    remove it with: {command}"]
        lines.append(f"Or run `lambda-affinity deploy` again to finish, or `{destroy_command}` to remove it all.")
    if kept:
        lines.append(f"Kept (changes to the deployment that was already there): {'; '.join(kept)}.")
    if not (undone or left):
        lines.insert(0, "Nothing was created, so nothing is left behind.")
    return "\n".join(lines)
