"""Webhook target rules (SSRF guard, SPEC §6): scheme, credentials, public addresses only."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util import connection as urllib3_connection

from apps.core.text import InvalidDomain, idna_ascii

logger = logging.getLogger(__name__)

MAX_URL_LENGTH = 2048
# One message whether the name does not exist or resolves to a private address: two messages
# would tell a tenant which internal names exist (a CNAME to 'db.internal' is enough to ask).
NOT_PUBLIC_MESSAGE = "The host must resolve to public addresses only."
DNS_TIMEOUT_MESSAGE = "Host did not resolve in time."
# Look-ups run on one small pool per process, at most DNS_PER_REQUEST of them at a time for
# one request, so that a bulk of never-answering hosts cannot take every thread. A look-up
# cannot be cancelled: one past the deadline keeps its thread until the system resolver
# gives up (resolv.conf's timeout x attempts), which is why the pool is shared and bounded.
DNS_POOL_SIZE = 32
DNS_PER_REQUEST = 16


def address_is_public(address: str) -> bool:
    """False for loopback, private, link-local, multicast, reserved and unspecified ranges."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv4 address carried inside (::ffff:a.b.c.d, or 6to4's 2002:AABB:CCDD::, which
        # relays reach at a.b.c.d) is where the request ends up: check that one.
        ip = ip.ipv4_mapped or ip.sixtofour or ip
    return ip.is_global and not (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({info[4][0] for info in infos})


_pool_lock = threading.Lock()
_pool: tuple[int, ThreadPoolExecutor] | None = None


def _dns_pool() -> ThreadPoolExecutor:
    """This process's look-up pool; made on first use so that a forked worker gets its own."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid():
            _pool = (
                os.getpid(),
                ThreadPoolExecutor(max_workers=DNS_POOL_SIZE, thread_name_prefix="sluice-dns"),
            )
        return _pool[1]


Target = tuple[str, int]  # (ASCII host, port)


def resolve_all(targets: Iterable[Target], *, timeout: float) -> dict[Target, list[str] | None]:
    """Resolve distinct targets concurrently within ``timeout`` seconds in all.

    Each target maps to its addresses (empty when it did not resolve); a target missing from
    the answer did not resolve in time. IP literals are answered without a look-up.
    """
    answers: dict[Target, list[str] | None] = {}
    waiting: list[Target] = []
    for target in dict.fromkeys(targets):
        try:
            ipaddress.ip_address(target[0].split("%", 1)[0])
        except ValueError:
            waiting.append(target)
        else:
            answers[target] = [target[0]]
    deadline = time.monotonic() + timeout
    pool = _dns_pool()
    running: dict[Future[list[str]], Target] = {}
    waiting.reverse()  # popped from the end, in the request's order
    while waiting or running:
        while waiting and len(running) < DNS_PER_REQUEST:
            target = waiting.pop()
            running[pool.submit(resolve, *target)] = target
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        done, _ = wait(running, timeout=remaining, return_when=FIRST_COMPLETED)
        for future in done:
            target = running.pop(future)
            try:
                answers[target] = future.result()
            except (OSError, UnicodeError) as exc:
                logger.info("webhook host %s did not resolve: %s", target[0], exc)
                answers[target] = []
    for future in running:
        future.cancel()  # a queued one never starts; a running one is left to finish
    return answers


def _target_or_problem(url: str) -> tuple[Target | None, str | None]:
    """The (host, port) a URL would be delivered to, or why it may never be (no DNS)."""
    if len(url) > MAX_URL_LENGTH:
        return None, f"Must be at most {MAX_URL_LENGTH} characters."
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None, "Must be a valid URL."
    allowed = ("https", "http") if settings.WEBHOOK_ALLOW_HTTP else ("https",)
    if parts.scheme not in allowed:
        return None, (
            "Must be an https:// URL."
            if not settings.WEBHOOK_ALLOW_HTTP
            else "Must be an http(s) URL."
        )
    host = parts.hostname
    if not host:
        return None, "Must include a host."
    if host.isascii():
        try:
            host.encode("idna")  # every label 1 to 63 characters
        except UnicodeError:
            return None, "Must have a valid host name."
    else:
        # As requests will encode it for delivery (IDNA 2008, UTS 46), not as the socket
        # module would (IDNA 2003: 'straße' would be checked as 'strasse', another host).
        try:
            host = idna_ascii(host)
        except InvalidDomain:
            return None, "Must have a valid host name (IDNA 2008)."
    if parts.username or parts.password:
        return None, "Must not contain credentials."
    return (host, port or (443 if parts.scheme == "https" else 80)), None


def webhook_url_syntax_problem(url: str) -> str | None:
    """The rules checked without DNS: what no look-up could make acceptable."""
    return _target_or_problem(url)[1]


def webhook_urls_problems(urls: Iterable[str]) -> dict[str, str]:
    """Why each refused URL may not receive webhooks (URLs that may are left out).

    The distinct hosts of all of them are resolved once, concurrently, within
    WEBHOOK_DNS_TIMEOUT_SECONDS in all: a request never holds a web thread longer, however
    many of its hosts never answer.
    """
    problems: dict[str, str] = {}
    targets: dict[str, Target] = {}
    for url in dict.fromkeys(urls):
        target, problem = _target_or_problem(url)
        if problem:
            problems[url] = problem
        elif target is not None:
            targets[url] = target
    if settings.WEBHOOK_ALLOW_PRIVATE_TARGETS or not targets:
        return problems
    answers = resolve_all(targets.values(), timeout=settings.WEBHOOK_DNS_TIMEOUT_SECONDS)
    for url, target in targets.items():
        addresses = answers.get(target)
        if addresses is None:
            logger.info("webhook host %s did not resolve in time", target[0])
            problems[url] = DNS_TIMEOUT_MESSAGE
        elif not addresses or not all(address_is_public(a) for a in addresses):
            # The detail stays here: the tenant gets one message for both cases.
            if addresses:
                logger.warning("webhook host %s refused: resolves to %s", target[0], addresses)
            problems[url] = NOT_PUBLIC_MESSAGE
    return problems


def webhook_url_problem(url: str) -> str | None:
    """Why ``url`` may not receive webhooks, or None when it may."""
    return webhook_urls_problems([url]).get(url)


# --- Delivery-time guard: the address actually connected to must be public too ----------------


class PrivateAddressError(NewConnectionError):
    """The target resolved to (or connected to) a non-public address; nothing was sent."""


class _GuardedConnectionMixin:
    """Resolve, refuse unless every address is public, connect to a checked IP, check the peer.

    Connecting to the validated IP (not re-resolving the name) closes the DNS-rebinding window;
    TLS SNI, certificate checks and the Host header still use the URL's host name, because only
    the socket is created here.
    """

    host: str
    port: int
    timeout: Any
    source_address: Any
    socket_options: Any
    _dns_host: str

    def request(self, *args: Any, **kwargs: Any) -> None:
        watch = getattr(_local, "watch", None)
        if watch is not None:
            watch.connection = self
        super().request(*args, **kwargs)  # type: ignore[misc]

    def _new_conn(self) -> socket.socket:
        if settings.WEBHOOK_ALLOW_PRIVATE_TARGETS:
            return super()._new_conn()  # type: ignore[misc]
        try:
            addresses = resolve(self._dns_host, self.port)
        except (OSError, UnicodeError) as exc:
            logger.info("webhook host %s did not resolve: %s", self._dns_host, exc)
            addresses = []
        refused = [a for a in addresses if not address_is_public(a)]
        if not addresses or refused:
            # What it resolved to is logged, not stored in the attempt the tenant reads; and
            # "does not resolve" reads the same, or a CNAME would probe internal names.
            if refused:
                logger.warning("webhook host %s refused: resolves to %s", self.host, addresses)
            raise PrivateAddressError(
                self,  # type: ignore[arg-type]
                "Refused: the host does not resolve to public addresses only "
                "(a non-public address, or none).",
            )
        error: Exception | None = None
        for address in addresses:
            try:
                sock = urllib3_connection.create_connection(
                    (address, self.port),
                    self.timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except TimeoutError as exc:
                error = ConnectTimeoutError(self, f"Connection to {self.host} timed out.")
                error.__cause__ = exc
                continue
            except OSError as exc:
                error = NewConnectionError(
                    self,  # type: ignore[arg-type]
                    f"Failed to establish a new connection: {exc}",
                )
                continue
            peer = sock.getpeername()[0]
            if not address_is_public(peer):
                sock.close()
                logger.warning("webhook host %s refused: connected to %s", self.host, peer)
                raise PrivateAddressError(
                    self,  # type: ignore[arg-type]
                    "Refused: connected to a non-public address.",
                )
            return sock
        assert error is not None
        raise error


class _GuardedHTTPConnection(_GuardedConnectionMixin, HTTPConnection):
    pass


class _GuardedHTTPSConnection(_GuardedConnectionMixin, HTTPSConnection):
    pass


class _GuardedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class GuardedAdapter(HTTPAdapter):
    """A requests adapter whose connections go through the public-address guard."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _GuardedHTTPConnectionPool,
            "https": _GuardedHTTPSConnectionPool,
        }


_local = threading.local()


class AttemptWatch:
    """The connection one attempt is using, so that another thread can cut it off.

    Socket timeouts bound each read, not the whole answer: a receiver that trickles a byte
    every few seconds would otherwise hold a delivery thread (and outlive the claim lease).
    """

    def __init__(self) -> None:
        self.connection: Any = None
        # Set by the attempt once the status line and headers are in.
        self.answered = False
        # Cut off before that: whatever status was parsed from a truncated head is not one.
        self.cut_before_answer = False

    def cut_off(self) -> None:
        self.cut_before_answer = not self.answered
        sock = getattr(self.connection, "sock", None)
        if sock is not None:
            # The plain socket's shutdown, under any TLS layer: the blocked read returns.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)


def attempt_watch() -> AttemptWatch:
    """Watch the connection this thread's next request uses."""
    watch = AttemptWatch()
    _local.watch = watch
    return watch


def session() -> requests.Session:
    """This thread's delivery session (connection reuse; sessions are not shared across threads)."""
    current = getattr(_local, "session", None)
    if current is None:
        current = requests.Session()
        # Environment proxies would make the guard check the proxy instead of the target.
        current.trust_env = False
        adapter = GuardedAdapter(pool_connections=32, pool_maxsize=4)
        current.mount("http://", adapter)
        current.mount("https://", adapter)
        _local.session = current
    return current
