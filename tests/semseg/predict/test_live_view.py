"""The web live view of predict_realtime.py: who it answers, and clients that leave early."""

import http.client
import socket
import struct
import time

import numpy as np
import pytest

from semseg.predict.live_view import LiveView


@pytest.fixture
def view():
    with LiveView(port=0, title="test") as live_view:
        live_view.publish(np.zeros((48, 64, 3), np.uint8))
        yield live_view


def get(view, path, host):
    port = int(view.url.rsplit(":", 1)[1].strip("/"))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.putrequest("GET", path, skip_host=True)
    connection.putheader("Host", host.format(port=port))
    connection.endheaders()
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, body


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "[::1]:{port}"])
def test_the_machine_itself_is_answered(view, host):
    status, body = get(view, "/frame.jpg", host)
    assert status == 200 and body[:2] == b"\xff\xd8"  # a JPEG


@pytest.mark.parametrize(
    "host", ["attacker.example:{port}", "127.0.0.1.nip.io:{port}", "localhost", "127.0.0.1:1"]
)
def test_other_host_names_are_refused(view, host):
    for path in ("/", "/frame.jpg", "/stream"):
        status, body = get(view, path, host)
        assert status == 403 and b"\xff\xd8" not in body


def test_a_client_that_leaves_before_the_reply_prints_no_traceback(capfd):
    noise = np.random.default_rng(0).integers(0, 255, (4000, 5000, 3), dtype=np.uint8)
    with LiveView(port=0, title="test") as live_view:
        live_view.publish(noise)  # a JPEG of about 30 MB: the reply outlasts the client
        port = int(live_view.url.rsplit(":", 1)[1].strip("/"))
        for path in ("/frame.jpg", "/"):
            client = socket.create_connection(("127.0.0.1", port))
            client.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            client.recv(16)
            # Close with a reset, as a browser tab that is shut does.
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()
        time.sleep(0.5)
    assert "Traceback" not in capfd.readouterr().err
