"""What the affinity wrapper costs an app per call: a handler called plain and wrapped, Python and Node.js, in one
run, side by side (the same handler, the same events, rounds alternating plain and wrapped so that machine noise
falls on both alike; the median round counts).

Events: a Function URL event with a session key (the wrapper reads the key, consults its cache and adds five
headers to a copy of the result), and a direct Invoke (the wrapper writes its AFFINITY log line: here to an
in-memory sink in Python and to /dev/null in Node.js, so the figure is the wrapper's work, not a terminal's).
The handler itself returns a small response object and does nothing else, so the difference is the wrapper.

Usage: python bench/wrapper_overhead.py [--calls 200000] [--rounds 5]
Last lines: python_url_overhead_us: X   (goal < 50)
            nodejs_url_overhead_us: Y
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

from lambda_affinity.aws.layer import source_dir
from lambda_affinity_wrapper import affinity

URL_EVENT = {
    "version": "2.0",
    "rawPath": "/items/42",
    "requestContext": {"http": {"method": "GET", "path": "/items/42"}},
    "headers": {"host": "example.lambda-url.us-east-1.on.aws", "x-affinity-session": "user-0042", "accept": "*/*"},
    "isBase64Encoded": False,
}
INVOKE_EVENT = {"op": "echo", "n": 42}


class Context:
    aws_request_id = "00000000-0000-0000-0000-000000000000"


def app(event, context):
    return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": '{"ok":true}'}


def per_call_us(handler, event, calls: int) -> float:
    context = Context()
    start = time.perf_counter()
    for _ in range(calls):
        handler(event, context)
    return (time.perf_counter() - start) / calls * 1e6


def python_figures(calls: int, rounds: int) -> dict:
    wrapped = affinity(app)
    out = {}
    for name, event in (("url", URL_EVENT), ("invoke", INVOKE_EVENT)):
        plain, wrap = [], []
        with contextlib.redirect_stdout(io.StringIO()):
            for _ in range(rounds):
                plain.append(per_call_us(app, event, calls))
                wrap.append(per_call_us(wrapped, event, calls))
        out[name] = (statistics.median(plain), statistics.median(wrap))
    return out


NODE_SCRIPT = """
import fs from 'node:fs';
const [index, calls, rounds, urlEvent, invokeEvent] = JSON.parse(fs.readFileSync(0, 'utf8'));
const devnull = fs.openSync('/dev/null', 'w');
process.stdout.write = (chunk) => { fs.writeSync(devnull, chunk); return true; };  // the log line's sink
const { withAffinity } = await import(index);
const app = async () => ({ statusCode: 200, headers: { 'content-type': 'application/json' }, body: '{"ok":true}' });
const wrapped = withAffinity(app);
const context = { awsRequestId: '00000000-0000-0000-0000-000000000000' };
async function perCallUs(handler, event) {
  const start = process.hrtime.bigint();
  for (let i = 0; i < calls; i++) await handler(event, context);
  return Number(process.hrtime.bigint() - start) / calls / 1000;
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const out = {};
for (const [name, event] of [['url', urlEvent], ['invoke', invokeEvent]]) {
  const plain = [], wrap = [];
  for (let r = 0; r < rounds; r++) {
    plain.push(await perCallUs(app, event));
    wrap.push(await perCallUs(wrapped, event));
  }
  out[name] = [median(plain), median(wrap)];
}
fs.writeSync(2, JSON.stringify(out));
"""


def node_figures(calls: int, rounds: int) -> dict | None:
    if shutil.which("node") is None:
        return None
    index = "file://" + os.path.join(source_dir("nodejs"), "index.mjs")
    proc = subprocess.run(
        ["node", "--input-type=module", "-e", NODE_SCRIPT],
        input=json.dumps([index, calls, rounds, URL_EVENT, INVOKE_EVENT]),
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return {k: tuple(v) for k, v in json.loads(proc.stderr).items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=200_000, help="calls per round and variant")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    results = {"python": python_figures(args.calls, args.rounds), "nodejs": node_figures(args.calls, args.rounds)}
    print(f"{'runtime':8} {'event':7} {'plain µs':>9} {'wrapped µs':>11} {'overhead µs':>12}")
    for runtime, figures in results.items():
        if figures is None:
            print(f"{runtime:8} (node not on PATH: skipped)")
            continue
        for event, (plain, wrapped) in figures.items():
            print(f"{runtime:8} {event:7} {plain:9.2f} {wrapped:11.2f} {wrapped - plain:12.2f}")
    for runtime, figures in results.items():
        if figures is not None:
            plain, wrapped = figures["url"]
            print(f"{runtime}_url_overhead_us: {wrapped - plain:.2f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
