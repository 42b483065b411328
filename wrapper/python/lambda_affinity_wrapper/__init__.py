"""lambda_affinity_wrapper: per-user execution-environment reuse of any Lambda app, with no code change.

Set the function's handler to `lambda_affinity_wrapper.handler` and name the app's own in AFFINITY_HANDLER
(as the observability layers are configured), or decorate the handler with `@affinity`. HTTP results get
`x-affinity-*` response headers; other calls log one `AFFINITY {json}` line. docs/own-function.md tells more.
Stdlib only: it runs inside Lambda, from a layer (`lambda-affinity layer build`).
"""

import os

__all__ = ["affinity", "handler"]

if os.environ.get("_HANDLER") == "lambda_affinity_wrapper.handler":
    # Configured as the handler: the app's module is imported in the init phase, as it would be unwrapped,
    # and an error there is an init error.
    from .wrap import affinity, handler, preload

    preload()
else:

    def __getattr__(name: str):
        # Loaded on first use: the probe imports only .state, and a cold start pays for no more.
        if name in __all__:
            from . import wrap

            return getattr(wrap, name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
