"""Counting in-flight invocations and deciding when to throttle.

AWS answers 429 TooManyRequestsException with a `Reason`:
- ReservedFunctionConcurrentInvocationLimitExceeded: the function's reserved
  concurrency is used up;
- ConcurrentInvocationLimitExceeded: the account's (here also the
  machine-safe environment cap, which stands for it locally);
- FunctionInvocationRateLimitExceeded: here, the function's scale-out rate
  (1,000 new environments per 10 s) is used up. AWS documents that such calls
  fail with 429 but not which Reason they carry; of the Reasons in botocore's
  model this is the one for a per-function rate.
"""

from __future__ import annotations

from ..errors import LambdaAffinityError

RESERVED_LIMIT = "ReservedFunctionConcurrentInvocationLimitExceeded"
ACCOUNT_LIMIT = "ConcurrentInvocationLimitExceeded"
SCALE_LIMIT = "FunctionInvocationRateLimitExceeded"


class Throttled(LambdaAffinityError):
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
        self.throttles: dict[str, int] = {RESERVED_LIMIT: 0, ACCOUNT_LIMIT: 0, SCALE_LIMIT: 0}

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


class ScaleRate:
    """AWS's per-function concurrency scaling rate as a token bucket: up to
    `limit` new environments at once, refilled continuously at `limit` per
    `window_s` ("Lambda makes a best attempt to refill your concurrency
    scaling rate continuously over time ... doesn't accrue unused portions":
    AWS docs, Lambda scaling behaviour)."""

    __slots__ = ("limit", "rate", "_tokens", "_last")

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.rate = limit / window_s
        self._tokens: dict[str, float] = {}
        self._last: dict[str, float] = {}

    def take(self, function: str, now: float) -> bool:
        """One new environment for `function` at `now`: True if the rate allows it."""
        last = self._last.get(function)
        tokens = (
            float(self.limit)
            if last is None
            else min(float(self.limit), self._tokens[function] + max(0.0, now - last) * self.rate)
        )
        self._last[function] = now
        if tokens < 1.0:
            self._tokens[function] = tokens
            return False
        self._tokens[function] = tokens - 1.0
        return True
