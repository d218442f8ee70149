"""Webhook target rules (SSRF guard, SPEC §6): scheme, credentials, public addresses only."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util import connection as urllib3_connection

MAX_URL_LENGTH = 2048


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


def webhook_url_problem(url: str) -> str | None:
    """Why ``url`` may not receive webhooks, or None when it may."""
    if len(url) > MAX_URL_LENGTH:
        return f"Must be at most {MAX_URL_LENGTH} characters."
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "Must be a valid URL."
    allowed = ("https", "http") if settings.WEBHOOK_ALLOW_HTTP else ("https",)
    if parts.scheme not in allowed:
        return (
            "Must be an https:// URL."
            if not settings.WEBHOOK_ALLOW_HTTP
            else "Must be an http(s) URL."
        )
    if not parts.hostname:
        return "Must include a host."
    try:
        parts.hostname.encode("idna")  # every label 1 to 63 characters
    except UnicodeError:
        return "Must have a valid host name."
    if parts.username or parts.password:
        return "Must not contain credentials."
    if settings.WEBHOOK_ALLOW_PRIVATE_TARGETS:
        return None
    try:
        addresses = resolve(parts.hostname, port or (443 if parts.scheme == "https" else 80))
    except (OSError, UnicodeError):
        return "The host does not resolve."
    if not addresses or not all(address_is_public(a) for a in addresses):
        return "The host must resolve to public addresses only."
    return None


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
            raise NameResolutionError(self.host, self, exc) from exc  # type: ignore[arg-type]
        refused = [a for a in addresses if not address_is_public(a)]
        if not addresses or refused:
            raise PrivateAddressError(
                self,  # type: ignore[arg-type]
                f"Refused: {self.host} resolves to a non-public address "
                f"({refused[0] if refused else 'none'}).",
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
                raise PrivateAddressError(
                    self,  # type: ignore[arg-type]
                    f"Refused: connected to non-public address {peer}.",
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
