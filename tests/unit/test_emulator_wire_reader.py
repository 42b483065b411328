"""The emulator's HTTP/1.1 reader on an in-process socket pair."""


def test_a_body_refused_at_its_head_leaves_no_error_behind():
    # The Reader on a real socket pair: a callback that stops the parser on
    # purpose must not also leave a 400 "callback error" to be raised next.
    from gevent import socket as gsocket

    from lambda_affinity.emulator.wire import App, BadRequest, Reader

    ours, theirs = gsocket.socketpair()
    with ours, theirs:
        reader = Reader(ours, App())
        theirs.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 7000000\r\nExpect: 100-continue\r\n\r\n")
        req = reader.request()
        assert req.too_large and not req.keep_alive
        assert reader.error is None and not reader.pending()
        # a limit hit in a callback keeps its own status
        reader = Reader(ours, App())
        theirs.sendall(b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            reader.request()
        except BadRequest as exc:
            assert exc.status == 414
        else:
            raise AssertionError("a 20 KB target was taken")
