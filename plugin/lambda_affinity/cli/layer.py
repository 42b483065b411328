"""`lambda-affinity layer build`: the affinity wrapper as a Lambda layer zip (aws/layer.py lays it out as /opt)."""

from __future__ import annotations

from ..aws.layer import RUNTIMES, WRAPPER_HANDLER, build_layer
from ..files import check_output_target, write_bytes


def _cmd_build(args) -> int:
    out = check_output_target(args.out)
    runtimes = RUNTIMES if args.runtime == "all" else (args.runtime,)
    data = build_layer(runtimes)
    write_bytes(out, data)
    print(f"wrote {out} ({len(data)} bytes): the affinity wrapper for {' and '.join(runtimes)}")
    for runtime in runtimes:
        print(f"  {runtime}: handler {WRAPPER_HANDLER[runtime]}, the app's own in AFFINITY_HANDLER")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser(
        "layer",
        help="build the affinity wrapper as a Lambda layer zip",
        description="The affinity wrapper (x-affinity-* response headers on any app, docs/own-function.md) as a "
        "Lambda layer: python/lambda_affinity_wrapper/ and nodejs/node_modules/lambda-affinity-wrapper/.",
    )
    actions = p.add_subparsers(dest="action", required=True)
    build = actions.add_parser("build", help="write the layer zip")
    build.add_argument(
        "--runtime", choices=(*RUNTIMES, "all"), default="all", help="which wrapper(s) the zip holds (default all)"
    )
    build.add_argument("--out", required=True, metavar="FILE.zip", help="the zip to write (replaced whole)")
    build.set_defaults(func=_cmd_build)
