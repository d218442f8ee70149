"""Normalisation of the identifiers a contact is matched on: domains and LinkedIn URLs."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from urllib.parse import urlsplit

_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_LINKEDIN_PROFILE = re.compile(r"^/in/([^/?#]+)/?$")


def ascii_fold(value: str) -> str:
    """'José Núñez' -> 'Jose Nunez' (drop combining marks, keep ASCII only)."""
    decomposed = unicodedata.normalize("NFKD", value)
    return decomposed.encode("ascii", "ignore").decode("ascii")


def normalize_domain(raw: str) -> str | None:
    """'https://www.Stripe.com:443/about' -> 'stripe.com'; None when it is not a hostname."""
    value = raw.strip().lower()
    if not value:
        return None
    if "://" not in value:
        value = "//" + value
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
    except ValueError:
        return None
    if host.startswith("www."):
        host = host[4:]
    host = host.rstrip(".")
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    if "." not in host or len(host) > 253:
        return None
    labels = host.split(".")
    if not all(_HOST_LABEL.match(label) for label in labels) or labels[-1].isdigit():
        return None
    return host


def normalize_linkedin(raw: str) -> str | None:
    """Canonical 'linkedin.com/in/<slug>' for an http(s) profile URL; None otherwise."""
    value = raw.strip()
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https"):
        return None
    host = (parts.hostname or "").lower()
    if host != "linkedin.com" and not host.endswith(".linkedin.com"):
        return None
    match = _LINKEDIN_PROFILE.match(parts.path)
    if not match:
        return None
    return f"linkedin.com/in/{match.group(1).lower()}"


PERSON_KEY_MAX_LENGTH = 600  # Contact.person_key's max_length (a test keeps them equal)


def person_key(*, linkedin_url: str, first_name: str, last_name: str, domain: str) -> str:
    """Who this contact is, for reusing a past hit: the profile URL, else name + domain."""
    if linkedin_url:
        canonical = normalize_linkedin(linkedin_url)
        if canonical:
            return canonical
    if domain:
        name = ascii_fold(f"{first_name} {last_name}").lower().split()
        key = f"name:{' '.join(name)}@{domain}"
        # Folding can lengthen a name ("⑽" is "(10)"): past the column's width, store a
        # digest of the whole key rather than a prefix that two people could share.
        if len(key) > PERSON_KEY_MAX_LENGTH:
            return f"sha256:{hashlib.sha256(key.encode()).hexdigest()}"
        return key
    return ""
