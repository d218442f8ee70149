"""Webhook target rules (SSRF guard, SPEC §6): scheme, credentials, public addresses only."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings

MAX_URL_LENGTH = 2048


def address_is_public(address: str) -> bool:
    """False for loopback, private, link-local, multicast, reserved and unspecified ranges."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
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
