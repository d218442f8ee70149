"""A real local HTTP receiver for webhook tests: programmable answers, every request recorded."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Answer:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    # Seconds between header lines sent one by one, never finishing (a trickling receiver).
    trickle: float = 0.0


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def event_type(self) -> str:
        return self.headers.get("x-sluice-event", "")


class Receiver:
    """``ThreadingHTTPServer`` on 127.0.0.1 in a thread. Queue answers with ``then``; once the
    queue is empty every request gets ``default``."""

    def __init__(self) -> None:
        self.default = Answer()
        # Fixed answers per path, before the queue: e.g. one dead path beside a healthy one.
        self.routes: dict[str, Answer] = {}
        self._answers: deque[Answer] = deque()
        self._lock = threading.Lock()
        self.requests: list[Received] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # One segment per answer: unbuffered writes plus Nagle cost 40 ms per request.
            disable_nagle_algorithm = True
            wbufsize = 65536

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.requests.append(
                        Received(
                            path=self.path,
                            headers={k.lower(): v for k, v in self.headers.items()},
                            body=body,
                            at=time.time(),
                        )
                    )
                    if self.path in receiver.routes:
                        answer = receiver.routes[self.path]
                    elif receiver._answers:
                        answer = receiver._answers.popleft()
                    else:
                        answer = receiver.default
                if answer.delay:
                    time.sleep(answer.delay)
                if answer.trickle:
                    self._trickle(answer.trickle)
                    return
                try:
                    self.send_response(answer.status)
                    for key, value in answer.headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                except OSError:
                    pass  # the client gave up (timeout); nothing to answer

            def _trickle(self, every: float) -> None:
                deadline = time.monotonic() + 30
                try:
                    self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                    self.wfile.flush()
                    while time.monotonic() < deadline:
                        time.sleep(every)
                        self.wfile.write(b"X-Slow: 1\r\n")
                        self.wfile.flush()
                except OSError:
                    pass  # the client cut us off
                self.close_connection = True

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def then(self, *answers: Answer) -> Receiver:
        with self._lock:
            self._answers.extend(answers)
        return self

    def received(self, event_type: str | None = None, path: str | None = None) -> list[Received]:
        with self._lock:
            return [
                r
                for r in self.requests
                if (event_type is None or r.event_type == event_type)
                and (path is None or r.path == path)
            ]
