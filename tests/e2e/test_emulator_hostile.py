"""Hostile and odd input on the emulator's HTTP side (issue 11): raw bytes on
real sockets, boto3 and botocore's signer against a running `lambda-affinity
emulate` process. Each answer is a precise 4xx/5xx, never silence or a hang."""

from __future__ import annotations

import base64
import json
import re
import shutil
import socket
from urllib.parse import urlsplit

import pytest
import requests
import yaml
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from fixture_paths import HANDLERS

from lambda_affinity.emulator.process import EmulatorProcess

pytestmark = pytest.mark.slow

KEY_ID, SECRET = "AKIDHOSTILETEST0001", "hostile-test-secret"
SHAPES = HANDLERS / "hostile/shapes.py"
# Posts its own result to the Runtime API as a chunked body with trailers
# past the limits, and returns the status line it got back.
TRAILER = HANDLERS / "hostile/trailer.py"
DEEP = "export const handler = async () => { let x = 0; for (let i = 0; i < 2000; i++) x = [x]; return x; };\n"


@pytest.fixture(scope="module")
def emu(emulator_code, tmp_path_factory):
    code = tmp_path_factory.mktemp("hostile-code")
    shutil.copyfile(SHAPES, (code / "shapes.py"))
    (code / "deep.mjs").write_text(DEEP)
    shutil.copyfile(TRAILER, (code / "trailer.py"))
    config = {
        "model": {"policy": "mru", "init_delay_s": 0},
        "credentials": [{"access_key_id": KEY_ID, "secret_access_key": SECRET}],
        "functions": [
            {"name": "probe"},
            {"name": "faults", "handler": "app.handler", "code": str(emulator_code["faults"]), "url": False},
            {"name": "shapes", "handler": "shapes.handler", "code": str(code)},
            {"name": "trailer", "handler": "trailer.handler", "code": str(code), "url": False},
            {"name": "deep", "runtime": "nodejs20.x", "handler": "deep.handler", "code": str(code)},
            {"name": "private1", "url": {"auth_type": "AWS_IAM"}},
            {"name": "private2", "url": {"auth_type": "AWS_IAM"}},
        ],
    }
    path = tmp_path_factory.mktemp("emu-hostile") / "emulator.yaml"
    path.write_text(yaml.safe_dump(config))
    with EmulatorProcess(config_path=str(path)) as proc:
        yield proc


@pytest.fixture(scope="module")
def lam(emu, emulator_lambda_client):
    return emulator_lambda_client(emu.endpoint)


def connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname, parts.port), timeout=5)


def exchange(url: str, data: bytes, pieces: int = 1) -> bytes:
    """Send `data` (in `pieces` writes) and read until the server closes; a
    server that never answers fails the test with socket.timeout."""
    with connect(url) as sock:
        step = -(-len(data) // pieces)
        try:
            for i in range(0, len(data), step):
                sock.sendall(data[i : i + step])
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered and closed before the rest was sent: read the answer
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def read_response(sock: socket.socket) -> bytes:
    """One whole response with a Content-Length body."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


INVOKE = b"POST /2015-03-31/functions/probe/invocations HTTP/1.1\r\nHost: x\r\n"


def test_nested_json_payload_is_400_not_silence(lam):
    with pytest.raises(ClientError) as err:
        lam.invoke(FunctionName="probe", Payload=b"[" * 1000 + b"]" * 1000)
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert err.value.response["Error"]["Code"] == "InvalidRequestContentException"
    assert "nesting depth" in err.value.response["Error"]["Message"]


def test_nested_json_result_on_a_function_url_is_502(emu, lam):
    # the function itself succeeds (Node nests 2000 deep), the conversion cannot
    assert lam.invoke(FunctionName="deep")["Payload"].read() == b"[" * 2000 + b"0" + b"]" * 2000
    resp = requests.get(emu.function_urls["deep"], timeout=30)
    assert resp.status_code == 502 and resp.text == "Internal Server Error"


def test_a_stray_crlf_after_a_body_is_ignored_and_the_answer_not_held(emu):
    with connect(emu.endpoint) as sock:
        sock.sendall(INVOKE + b"Content-Length: 2\r\n\r\n{}\r\n")
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")  # within the socket's 5 s, not 120
        sock.sendall(INVOKE + b"Content-Length: 2\r\n\r\n{}")  # the connection is still in step
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")


@pytest.mark.parametrize("pieces", [1, 64])
def test_a_head_over_64_kb_is_431_however_it_arrives(emu, pieces):
    answer = exchange(emu.endpoint, INVOKE + b"X-Big: " + b"a" * 100_000 + b"\r\nContent-Length: 2\r\n\r\n{}", pieces)
    assert answer.startswith(b"HTTP/1.1 431 ") and b"Connection: close" in answer
    many = b"".join(b"X-H%d: %s\r\n" % (i, b"b" * 1000) for i in range(90))  # 90 KB in many fields
    assert exchange(emu.endpoint, INVOKE + many + b"\r\n", pieces).startswith(b"HTTP/1.1 431 ")
    fields = b"".join(b"X-H%d: b\r\n" % i for i in range(150))  # small, but more than 100 of them
    answer = exchange(emu.endpoint, INVOKE + fields + b"\r\n", pieces)
    assert answer.startswith(b"HTTP/1.1 431 ") and b"more than 100 header fields" in answer


def test_an_unfinished_head_past_64_kb_is_431_after_the_answer_before_it(emu):
    # the head never ends: only the raw-byte count can refuse it
    with connect(emu.endpoint) as sock:
        sock.sendall(INVOKE + b"Content-Length: 2\r\n\r\n{}" + b"POST / HTTP/1.1\r\nHost: x\r\nX-Big: ")
        try:
            for _ in range(200_000 // 65536 + 1):
                sock.sendall(b"a" * 65536)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    first, second = answer.split(b"HTTP/1.1 ")[1:]
    assert first.startswith(b"200 ") and second.startswith(b"431 ") and b"Connection: close" in second, answer
    log = emu.read_log()
    assert "Traceback" not in log and "_Stop" not in log, log


CHUNKED = INVOKE + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n"


@pytest.mark.parametrize("pieces", [1, 64])
def test_trailers_have_the_limits_of_a_head(emu, pieces):
    answer = exchange(
        emu.endpoint,
        CHUNKED.replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n") + b"X-A: 1\r\nX-B: 2\r\n\r\n",
        pieces,
    )
    assert answer.startswith(b"HTTP/1.1 200 "), answer  # a few trailers are fine
    fields = b"".join(b"X-T%d: t\r\n" % i for i in range(150))
    answer = exchange(emu.endpoint, CHUNKED + fields + b"\r\n", pieces)
    assert answer.startswith(b"HTTP/1.1 431 ") and b"more than 100 trailer fields" in answer, answer
    many = b"".join(b"X-T%d: %s\r\n" % (i, b"t" * 1000) for i in range(90))  # 90 KB in many fields
    answer = exchange(emu.endpoint, CHUNKED + many + b"\r\n", pieces)
    assert answer.startswith(b"HTTP/1.1 431 ") and b"trailer section too large" in answer, answer
    # a value that never ends is refused once past the limit, not buffered until EOF
    with connect(emu.endpoint) as sock:
        sock.sendall(CHUNKED + b"X-T: ")
        try:
            for _ in range(300_000 // 65536 + 1):
                sock.sendall(b"a" * 65536)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert read_response(sock).startswith(b"HTTP/1.1 431 ")  # within the socket's 5 s


@pytest.mark.parametrize("trailers", ["many", "endless"])
def test_a_runtime_sending_trailers_past_the_limits_gets_431(lam, trailers):
    result = lam.invoke(FunctionName="trailer", Payload=json.dumps({"trailers": trailers}))
    assert "FunctionError" not in result
    assert json.loads(result["Payload"].read()) == "HTTP/1.1 431 Request Header Fields Too Large"


@pytest.mark.parametrize(
    "head, body, status, why",
    [
        (b"Transfer-Encoding: chunked\r\n", b"2\r\n{}XX0\r\n\r\n", 400, b"LF after chunk data"),
        (b"Transfer-Encoding: xchunked\r\n", b"0\r\n\r\n", 400, b"does not end in one chunked"),
        (b"Transfer-Encoding: gzip\r\n", b"0\r\n\r\n", 400, b"does not end in one chunked"),
        (b"Transfer-Encoding: chunked, chunked\r\n", b"0\r\n\r\n", 400, b"Invalid `Transfer-Encoding`"),
        (b"Transfer-Encoding: gzip, chunked\r\n", b"0\r\n\r\n", 501, b"only chunked is implemented"),
        (b"X-A: a\x00b\r\nContent-Length: 2\r\n", b"{}", 400, b"Invalid header value char"),
        (b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n", 400, b"Transfer-Encoding"),
    ],
)
def test_framing_errors_get_a_precise_answer_and_close(emu, head, body, status, why):
    answer = exchange(emu.endpoint, INVOKE + head + b"\r\n" + body)
    assert answer.startswith(b"HTTP/1.1 %d " % status) and why in answer, answer
    assert b"Connection: close" in answer


def test_lf_only_lines_are_400_not_a_hang(emu):
    # RFC 9112 2.2 allows either; we refuse, as llhttp does: a front end that
    # took bare LF while a proxy before it did not would read other requests.
    answer = exchange(
        emu.endpoint, b"POST /2015-03-31/functions/probe/invocations HTTP/1.1\nHost: x\nContent-Length: 2\n\n{}"
    )
    assert answer.startswith(b"HTTP/1.1 400 ") and b"CRLF" in answer


def test_line_breaks_in_a_client_context_reach_the_handler_as_json(lam):
    context = base64.b64encode(b'{\r\n "custom": {"a": "b\\r\\nc"},\n "env": {}\r\n}').decode()
    first = lam.invoke(FunctionName="faults", Payload=json.dumps({"action": "context"}), ClientContext=context)
    assert "FunctionError" not in first
    assert json.loads(first["Payload"].read())["client_context"] == {"custom": {"a": "b\r\nc"}, "env": {}}
    # the environment's stream stayed in step: the same process serves the next call
    after = [json.loads(lam.invoke(FunctionName="faults", Payload=b"{}")["Payload"].read()) for _ in range(2)]
    assert after[1]["pid"] == after[0]["pid"] and after[1]["count"] == after[0]["count"] + 1


@pytest.mark.parametrize("action", ["crlf_header", "crlf_cookie"])
def test_a_header_value_with_crlf_from_a_function_is_502_on_the_wire(emu, action):
    url = urlsplit(emu.function_urls["shapes"])
    answer = exchange(
        emu.function_urls["shapes"],
        f"GET /?action={action} HTTP/1.1\r\nHost: {url.netloc}\r\nConnection: close\r\n\r\n".encode(),
    )
    assert answer.startswith(b"HTTP/1.1 502 "), answer
    assert b"x-injected" not in answer.lower() and answer.endswith(b"\r\n\r\nInternal Server Error")


def signed(url: str, host: str | None = None) -> dict:
    """botocore's SigV4Auth over a GET of `url`, Host as the client would send it."""
    req = AWSRequest(method="GET", url=url, data=b"")
    SigV4Auth(Credentials(KEY_ID, SECRET), "lambda", "us-east-1").add_auth(req)
    return dict(req.headers.items(), Host=host or urlsplit(url).netloc)


def test_a_signature_for_one_function_url_is_refused_by_another(emu):
    one, other = emu.function_urls["private1"], emu.function_urls["private2"]
    assert requests.get(one, headers=signed(one), timeout=30).status_code == 200
    # replayed, Host and all, to the other URL
    replayed = requests.get(other, headers=signed(one), timeout=30)
    assert replayed.status_code == 403 and replayed.headers["x-amzn-ErrorType"] == "InvalidSignatureException"
    # or signed for whatever Host the signer liked
    for host in ("evil.example:80", "127.0.0.1", f"127.0.0.1:{urlsplit(other).port + 1}"):
        path_url = f"http://{host}/"
        resp = requests.get(other, headers=signed(path_url, host), timeout=30)
        assert resp.status_code == 403 and resp.headers["x-amzn-ErrorType"] == "InvalidSignatureException", host
    loopback = other.replace("127.0.0.1", "localhost")
    assert requests.get(loopback, headers=signed(loopback), timeout=30).status_code == 200


def test_function_url_results_are_converted_as_aws_does(emu):
    url = emu.function_urls["shapes"]
    text = requests.get(url, params={"action": "text"}, timeout=30)
    assert text.status_code == 200 and text.content == b"hello"
    assert requests.get(url, params={"action": "dict"}, timeout=30).content == b'{"hello":"world","list":[1,2]}'


def test_function_url_events_carry_aws_forwarding_headers(emu):
    url = emu.function_urls["shapes"]
    event = requests.get(url, headers={"Connection": "keep-alive", "X-Forwarded-For": "10.0.0.9"}, timeout=30).json()
    headers = event["headers"]
    assert "connection" not in headers
    assert headers["x-forwarded-for"] == "10.0.0.9, 127.0.0.1"
    assert headers["x-forwarded-proto"] == "http" and headers["x-forwarded-port"] == str(urlsplit(url).port)
    assert re.fullmatch(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24}", headers["x-amzn-trace-id"])
    plain = requests.get(url, timeout=30).json()["headers"]
    assert plain["x-forwarded-for"] == "127.0.0.1"
