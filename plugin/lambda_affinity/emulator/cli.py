"""`lambda-affinity emulate`: the local Lambda emulator on the command line."""

from __future__ import annotations

import argparse
import sys


def add_parser(sub) -> None:
    p = sub.add_parser(
        "emulate",
        help="run the local Lambda emulator (Invoke API, Function URLs, Runtime API)",
        description="Serve Lambda functions locally: the Invoke API (boto3 / AWS CLI with --endpoint-url), "
        "a Function URL per function, and real environment processes placed by the platform model. "
        "With no --config it serves one function, `probe`, running the bundled probe.",
    )
    p.add_argument("--config", metavar="FILE.yaml", help="functions and platform model options (see docs/emulator.md)")
    p.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1; only this machine)")
    p.add_argument(
        "--port", type=int, default=None, help="Invoke API port; 0 picks a free one (default: config, else 0)"
    )
    p.add_argument(
        "--ready-file",
        metavar="PATH",
        help='when ready, write {"endpoint": ..., "function_urls": {...}} to PATH as JSON',
    )
    p.add_argument("--quiet", action="store_true", help="do not print START/END/REPORT lines and function output")
    # Internal: EmulatorProcess keeps our stdin open; end of file means it died.
    p.add_argument("--exit-with-parent", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .config import ConfigFileError, default_config, load_config
    from .server import Emulator

    try:
        config = load_config(args.config) if args.config else default_config()
    except ConfigFileError as exc:
        print(f"lambda-affinity emulate: error: {exc}", file=sys.stderr)
        return 2
    if args.port is not None and not 0 <= args.port <= 65535:
        print(f"lambda-affinity emulate: error: --port: expected 0 to 65535, got {args.port}", file=sys.stderr)
        return 2
    emu = Emulator(config, host=args.host, port=args.port, log_stream=None if args.quiet else sys.stdout)

    def announce(e: Emulator) -> None:
        print(f"Lambda emulator ready: endpoint {e.endpoint}", file=sys.stderr)
        for name, url in e.function_urls.items():
            print(f"  function URL {name}: {url}", file=sys.stderr)
        sys.stderr.flush()

    try:
        return emu.serve_forever(ready_file=args.ready_file, stop_on_stdin_eof=args.exit_with_parent, announce=announce)
    except OSError as exc:
        print(
            f"lambda-affinity emulate: error: cannot listen on {emu.host}:{emu.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 1
