"""A real local HTTP receiver (webhook tests, vendor HTTP tests, the benchmarks): programmable
answers, every request recorded."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Server(ThreadingHTTPServer):
    # A listen backlog for many clients connecting at once (socketserver's default is 5: a
    # sender's 32 simultaneous connects overflowed it and were reset or retried, and the
    # receiver, not the sender, bounded the benchmarks).
    request_queue_size = 128


# How long a held answer or a trickle lasts at most: a bound, so that no test hangs forever.
LONGEST_ANSWER = 30.0


@dataclass
class Answer:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    # Seconds between header lines sent one by one, never finishing (a trickling receiver).
    trickle: float = 0.0
    # Answer only once the test calls ``Receiver.release()`` (a receiver that hangs).
    hold: bool = False


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    method: str = "POST"

    @property
    def event_type(self) -> str:
        return self.headers.get("x-sluice-event", "")


class Receiver:
    """``ThreadingHTTPServer`` on 127.0.0.1 in a thread. Queue answers with ``then``; once the
    queue is empty every request gets ``default``. GET and POST are answered alike."""

    def __init__(self, default: Answer | None = None) -> None:
        self.default = default or Answer()
        # Fixed answers per path, before the queue: e.g. one dead path beside a healthy one.
        self.routes: dict[str, Answer] = {}
        self._answers: deque[Answer] = deque()
        self._lock = threading.Lock()
        self._released = threading.Event()
        self.requests: list[Received] = []
        # The paths of answers the client hung up on before they were complete.
        self.hung_up: list[str] = []
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
                            method=self.command,
                        )
                    )
                    if self.path in receiver.routes:
                        answer = receiver.routes[self.path]
                    elif receiver._answers:
                        answer = receiver._answers.popleft()
                    else:
                        answer = receiver.default
                if answer.hold:
                    receiver._released.wait(LONGEST_ANSWER)
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
                    self._hung_up()  # the client gave up (timeout); nothing to answer

            do_GET = do_POST

            def _trickle(self, every: float) -> None:
                deadline = time.monotonic() + LONGEST_ANSWER
                try:
                    self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                    self.wfile.flush()
                    while time.monotonic() < deadline:
                        time.sleep(every)
                        self.wfile.write(b"X-Slow: 1\r\n")
                        self.wfile.flush()
                except OSError:
                    self._hung_up()  # the client cut us off
                self.close_connection = True

            def _hung_up(self) -> None:
                with receiver._lock:
                    receiver.hung_up.append(self.path)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def then(self, *answers: Answer) -> Receiver:
        with self._lock:
            self._answers.extend(answers)
        return self

    def release(self) -> None:
        """Let every held answer (``Answer(hold=True)``) go, now and from now on."""
        self._released.set()

    def received(self, event_type: str | None = None, path: str | None = None) -> list[Received]:
        with self._lock:
            return [
                r
                for r in self.requests
                if (event_type is None or r.event_type == event_type)
                and (path is None or r.path == path)
            ]

    def take(self) -> list[Received]:
        """Every request recorded so far, forgotten here (for long runs that count arrivals)."""
        with self._lock:
            taken, self.requests = self.requests, []
        return taken


def clean_http_environment(monkeypatch, home) -> None:
    """No proxy variable or ``~/.netrc`` of the machine running the tests applies: ``home``
    (a fresh directory) is ``$HOME`` and holds the only ``.netrc`` there is."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("NETRC", str(home / ".netrc"))
