"""Counting in-flight invocations and deciding when to throttle.

AWS answers 429 TooManyRequestsException with a `Reason`:
- ReservedFunctionConcurrentInvocationLimitExceeded: the function's reserved
  concurrency is used up;
- ConcurrentInvocationLimitExceeded: the account's (here also the
  machine-safe environment cap, which stands for it locally).
"""
from __future__ import annotations

RESERVED_LIMIT = "ReservedFunctionConcurrentInvocationLimitExceeded"
ACCOUNT_LIMIT = "ConcurrentInvocationLimitExceeded"


class Throttled(Exception):
    """The invocation is refused; `reason` is AWS's Reason string."""

    def __init__(self, reason: str, function: str, limit: int) -> None:
        super().__init__(f"Rate Exceeded. ({reason}: {function} at limit {limit})")
        self.reason = reason
        self.function = function
        self.limit = limit


class ConcurrencyCounter:
    __slots__ = ("account_limit", "total", "_per_function", "throttles")

    def __init__(self, account_limit: int) -> None:
        self.account_limit = account_limit
        self.total = 0
        self._per_function: dict[str, int] = {}
        self.throttles: dict[str, int] = {RESERVED_LIMIT: 0, ACCOUNT_LIMIT: 0}

    def in_flight(self, function: str) -> int:
        return self._per_function.get(function, 0)

    def admit(self, function: str, reserved: int | None) -> None:
        """Count one more in-flight invocation, or raise Throttled."""
        current = self._per_function.get(function, 0)
        if reserved is not None and current >= reserved:
            self.refuse(RESERVED_LIMIT, function, reserved)
        if self.total >= self.account_limit:
            self.refuse(ACCOUNT_LIMIT, function, self.account_limit)
        self._per_function[function] = current + 1
        self.total += 1

    def refuse(self, reason: str, function: str, limit: int) -> None:
        self.throttles[reason] += 1
        raise Throttled(reason, function, limit)

    def done(self, function: str) -> None:
        current = self._per_function.get(function, 0)
        if current <= 0:
            raise RuntimeError(f"concurrency underflow for {function!r}: release without admit")
        self._per_function[function] = current - 1
        self.total -= 1
