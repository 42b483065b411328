"""Thousands of kept-alive connections (Locust runs hold one per user): every
client gets answers on every port, and the emulator gives every fd back."""

from __future__ import annotations

import resource
import socket
import time
from urllib.parse import urlsplit

import psutil
import pytest

from lambda_affinity.emulator.process import EmulatorProcess

pytestmark = pytest.mark.slow

CLIENTS = 1500  # over the 1000 connections per port the emulator used to serve at most


@pytest.fixture
def fd_room():
    """Room in this test process for both ends' worth of sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 2 * CLIENTS + 512
    if hard != resource.RLIM_INFINITY and hard < want:
        pytest.skip(f"the fd hard limit ({hard}) is below {want}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def ask(sock: socket.socket, request: bytes) -> bytes:
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "closed by the emulator"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
    while len(body) < length:
        body += sock.recv(65536)
    return head


def test_1500_kept_alive_clients_per_port_all_get_answers_and_fds_come_back(fd_room):
    with EmulatorProcess() as emu:
        main, url = urlsplit(emu.endpoint), urlsplit(emu.function_urls["probe"])
        requests_for = {
            main.port: [
                b"GET /_emulator/health HTTP/1.1\r\nHost: x\r\n\r\n",
                b"POST /2015-03-31/functions/probe/invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
            ],
            url.port: [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"],
        }
        emulator = psutil.Process(emu.proc.pid)
        soft, hard = emulator.rlimit(psutil.RLIMIT_NOFILE)
        assert soft == hard or hard == resource.RLIM_INFINITY  # raised as far as it goes
        for port, reqs in requests_for.items():  # the environment exists before the baseline
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                assert ask(sock, reqs[-1]).startswith(b"HTTP/1.1 200 ")
        time.sleep(0.2)
        baseline, rss_before = emulator.num_fds(), emulator.memory_info().rss
        socks = []
        try:
            for port, reqs in requests_for.items():
                for i in range(CLIENTS):
                    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                    socks.append((sock, reqs[i % len(reqs)]))
                    assert ask(sock, reqs[i % len(reqs)]).startswith(b"HTTP/1.1 200 "), (port, i)
            assert emulator.num_fds() >= baseline + 2 * CLIENTS
            rss_per_connection = (emulator.memory_info().rss - rss_before) / (2 * CLIENTS)
            print(f"emulator RSS per idle kept-alive connection: {rss_per_connection / 1024:.1f} KiB")
            for sock, req in socks:  # all still served, first to last
                assert ask(sock, req).startswith(b"HTTP/1.1 200 ")
        finally:
            for sock, _ in socks:
                sock.close()
        deadline = time.monotonic() + 10
        while emulator.num_fds() > baseline and time.monotonic() < deadline:
            time.sleep(0.05)
        assert emulator.num_fds() == baseline
