"""The emulator's HTTP/1.1 server on its own: limits on what a client may hold."""

import socket
import subprocess
import sys
import time

import psutil
from fixture_paths import SCRIPTS

SERVER = SCRIPTS / "echo_server.py"


def test_an_idle_or_stalled_client_is_disconnected():
    proc = subprocess.Popen([sys.executable, str(SERVER)], stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        idle = socket.create_connection(("127.0.0.1", port), timeout=10)
        stalled = socket.create_connection(("127.0.0.1", port), timeout=10)
        stalled.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly part of it")
        served = socket.create_connection(("127.0.0.1", port), timeout=10)
        served.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert served.recv(4096).startswith(b"HTTP/1.1 200 ")
        started = time.monotonic()
        for sock in (idle, stalled, served):  # served: idle after its request
            assert sock.recv(4096) == b""  # closed by the server
        assert time.monotonic() - started < 5
        # a busy client is not idle: requests 0.2 s apart keep one connection open past the timeout
        busy = socket.create_connection(("127.0.0.1", port), timeout=10)
        for _ in range(5):
            busy.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert busy.recv(4096).startswith(b"HTTP/1.1 200 ")
            time.sleep(0.2)
        for sock in (idle, stalled, served, busy):
            sock.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert not psutil.pid_exists(proc.pid)


def exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_pipelining_upgrades_versions_and_long_targets():
    proc = subprocess.Popen([sys.executable, str(SERVER)], stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        # pipelined: answered in order in one go, then the garbage gets its 400 and the close
        answer = exchange(
            port, b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\nNOT HTTP\r\n\r\n"
        )
        assert answer.count(b"HTTP/1.1 200 ") == 2 and answer.split(b"HTTP/1.1 ")[3].startswith(b"400 ")
        # an Upgrade is answered as HTTP/1.1 and the connection closed: what follows is not HTTP to us
        answer = exchange(
            port,
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\nGET / HTTP/1.1\r\n\r\n",
        )
        assert answer.count(b"HTTP/1.1 ") == 1 and answer.startswith(b"HTTP/1.1 200 ")
        assert b"Connection: close" in answer
        assert exchange(port, b"GET / HTTP/2.0\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 505 ")
        assert exchange(port, b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 414 ")
        # Expect: 100-continue gets its interim answer before the body is sent
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
            assert sock.recv(4096) == b"HTTP/1.1 100 Continue\r\n\r\n"
            sock.sendall(b"{}")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert not psutil.pid_exists(proc.pid)
