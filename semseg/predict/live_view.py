"""The live view in a web browser, for OpenCV builds without a GUI (opencv-python-headless).

`predict_realtime.py` shows its overlays in a window when OpenCV has a GUI, and
otherwise serves them on a local page: `http://127.0.0.1:PORT/` shows the newest
frame with its FPS and latency (drawn on the frame), refreshed as fast as the
browser fetches it. Standard library only (`http.server`), bound to 127.0.0.1, and
answering only requests for `127.0.0.1:PORT` or `localhost:PORT` (403 for any other
`Host`, as local development servers do against DNS rebinding).

| path          | what                                                      |
|---------------|-----------------------------------------------------------|
| `/`           | the page: the frame, the frame count, the source          |
| `/frame.jpg`  | the newest frame as JPEG; header `X-Frame-Index`          |
| `/stream`     | the frames as an MJPEG stream (`<img src=...>`, VLC, ...) |

Example:

    with LiveView(title="drive.mp4") as view:
        print(view.url)                  # http://127.0.0.1:8765/
        view.publish(bgr_picture)        # every segmented frame
"""

import html
import http.server
import threading

import cv2

from semseg.base.errors import InputError

DEFAULT_PORT = 8765
JPEG_QUALITY = 80
# Ports tried after the requested one when it is taken.
PORT_ATTEMPTS = 20

_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title} - semseg live view</title>
<style>body{{background:#111;color:#ddd;font:14px sans-serif;margin:12px}}
img{{max-width:100%;display:block;margin-top:8px}}</style></head>
<body><div>{title}: frame <span id="index">-</span>, <span id="received">0</span> received,
<span id="distinct">0</span> distinct</div>
<img id="frame" alt="waiting for the first frame">
<script>
const seen = new Set();
let received = 0;
async function next() {{
  try {{
    const response = await fetch("frame.jpg?" + Date.now(), {{cache: "no-store"}});
    if (response.ok) {{
      const index = response.headers.get("X-Frame-Index");
      const blob = await response.blob();
      const image = document.getElementById("frame");
      const old = image.src;
      image.src = URL.createObjectURL(blob);
      if (old) URL.revokeObjectURL(old);
      received += 1;
      seen.add(index);
      document.getElementById("index").textContent = index;
      document.getElementById("received").textContent = received;
      document.getElementById("distinct").textContent = seen.size;
    }}
  }} catch (error) {{}}
  setTimeout(next, 30);
}}
next();
</script></body></html>
"""


class LiveView:
    """A local web server showing the newest published frame.

    Args:
        port: the port to listen on (127.0.0.1); the next ones are tried when it
            is taken, 0 picks any free port.
        title: shown on the page (e.g. the source).

    Attributes:
        url: `http://127.0.0.1:PORT/`.
    """

    def __init__(self, port=DEFAULT_PORT, title="semseg"):
        self._title = html.escape(str(title))
        self._condition = threading.Condition()
        self._jpeg = None
        self._index = 0
        self._closed = False
        self._server = self._bind(port)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="live-view", daemon=True
        )
        self._thread.start()

    def _bind(self, port):
        view = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                path = self.path.split("?")[0]
                try:
                    if self.headers.get("Host") not in view._hosts():
                        # Another name for 127.0.0.1 (DNS rebinding): a web page the user
                        # visits must not read the camera.
                        self.send_error(403, "this live view answers 127.0.0.1 and localhost")
                    elif path == "/":
                        view._send_page(self)
                    elif path == "/frame.jpg":
                        view._send_frame(self)
                    elif path == "/stream":
                        view._send_stream(self)
                    else:
                        self.send_error(404)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the browser went away before the reply

            def log_message(self, *args):
                pass  # no line per request on the terminal

        candidates = [port] if port == 0 else range(port, port + PORT_ATTEMPTS)
        for candidate in candidates:
            try:
                server = http.server.ThreadingHTTPServer(("127.0.0.1", candidate), Handler)
            except OSError:
                continue
            server.daemon_threads = True
            return server
        raise InputError(
            f"--port {port}: ports {port}..{port + PORT_ATTEMPTS - 1} on 127.0.0.1 are taken; "
            "pass another --port"
        )

    def _hosts(self):
        """The `Host` headers answered: this machine by address or name, with the port."""
        port = self._server.server_address[1]
        return {f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"}

    def publish(self, picture):
        """Shows a BGR `uint8` picture (what `cv2.imshow` would get)."""
        ok, encoded = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            return
        with self._condition:
            self._jpeg = encoded.tobytes()
            self._index += 1
            self._condition.notify_all()

    def _latest(self, after, timeout):
        """The newest `(index, jpeg)` with an index above `after`, waiting up to `timeout` s."""
        with self._condition:
            self._condition.wait_for(
                lambda: self._closed or (self._jpeg is not None and self._index > after),
                timeout,
            )
            return self._index, self._jpeg

    def _send_page(self, handler):
        body = _PAGE.format(title=self._title).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html; charset=utf-8")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _send_frame(self, handler):
        index, jpeg = self._latest(0, timeout=5.0)
        if jpeg is None:
            handler.send_error(503, "no frame yet")
            return
        handler.send_response(200)
        handler.send_header("Content-Type", "image/jpeg")
        handler.send_header("Content-Length", str(len(jpeg)))
        handler.send_header("Cache-Control", "no-store")
        handler.send_header("X-Frame-Index", str(index))
        handler.end_headers()
        handler.wfile.write(jpeg)

    def _send_stream(self, handler):
        handler.send_response(200)
        handler.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        handler.send_header("Cache-Control", "no-store")
        handler.end_headers()
        index = 0
        try:
            while not self._closed:
                index, jpeg = self._latest(index, timeout=1.0)
                if jpeg is None:
                    continue
                handler.wfile.write(
                    b"--frame\r\nContent-Type: image/jpeg\r\n"
                    + f"Content-Length: {len(jpeg)}\r\n\r\n".encode()
                    + jpeg
                    + b"\r\n"
                )
        except (BrokenPipeError, ConnectionResetError):
            pass  # the browser went away

    def close(self):
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
