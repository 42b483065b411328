"""The root of every error lambda-affinity raises on purpose.

A command catches LambdaAffinityError and prints its message as one line (exit 2); anything else is a bug
and shows its traceback. Subclasses keep the built-in base they had (ValueError, RuntimeError...), so code
that caught those still does.
"""

from __future__ import annotations


class LambdaAffinityError(Exception):
    """An error the package raises on purpose, with a message meant for the person who ran it."""
