"""Text helpers shared by every app: ASCII folding, host names under IDNA 2008, domains and
LinkedIn profile URLs as a contact is matched on them."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import urlsplit

import idna

_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_LINKEDIN_PROFILE = re.compile(r"^/in/([^/?#]+)/?$")


def ascii_fold(value: str) -> str:
    """'José Núñez' -> 'Jose Nunez' (drop combining marks, keep ASCII only)."""
    decomposed = unicodedata.normalize("NFKD", value)
    return decomposed.encode("ascii", "ignore").decode("ascii")


class InvalidDomain(ValueError):
    """A host name that IDNA 2008 refuses; the message says why, for a 422."""


def idna_ascii(host: str) -> str:
    """The host's ASCII (A-label) form under IDNA 2008 with UTS 46 mapping.

    Not Python's "idna" codec, which is IDNA 2003: it maps 'straße.de' to 'strasse.de', which
    is another registrable domain (and another owner). Non-transitional processing keeps ß, ς
    and the joiners; UTS 46 maps case, full-width forms and ideographic full stops first. This
    is also what requests does with a non-ASCII URL host, so a webhook URL is checked here as
    it will be delivered to.
    """
    try:
        return idna.encode(host, uts46=True, transitional=False).decode("ascii")
    except idna.IDNAError as exc:  # includes InvalidCodepoint(Context)
        reason = str(exc).rstrip(".") or "invalid label"
        raise InvalidDomain(f"Must be a valid domain name (IDNA 2008): {reason}.") from exc
    except UnicodeError as exc:
        raise InvalidDomain("Must be a valid domain name (IDNA 2008).") from exc


DOMAIN_MESSAGE = "Must be a hostname such as 'stripe.com'."


def domain_normalized(raw: str) -> str:
    """'https://www.Stripe.com:443/about' -> 'stripe.com'; InvalidDomain (with why) otherwise."""
    value = raw.strip()
    if not value:
        raise InvalidDomain(DOMAIN_MESSAGE)
    if "://" not in value:
        value = "//" + value
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
    except ValueError:
        raise InvalidDomain(DOMAIN_MESSAGE) from None
    host = host.rstrip(".")
    if not host or (host.isascii() and not all(map(_HOST_LABEL.match, host.split(".")))):
        # 'not a domain' or '[::1]': the plain message, not an IDNA code point report.
        raise InvalidDomain(DOMAIN_MESSAGE)
    # Mapped first: a full-width 'www.' (U+FF57) or a trailing ideographic full stop is only seen
    # as 'www.' or '.' afterwards. A lowercase letters-digits-hyphens host (checked above) whose
    # labels have no '--' in the third and fourth places is its own IDNA 2008 form: skipping
    # the codec for it (most domains) halves what validating a CSV row costs.
    if not (host.isascii() and len(host) <= 253 and "--" not in host):
        host = idna_ascii(host).rstrip(".")
    if host.startswith("www."):
        host = host[4:]
    if "." not in host or len(host) > 253:
        raise InvalidDomain(DOMAIN_MESSAGE)
    labels = host.split(".")
    if not all(_HOST_LABEL.match(label) for label in labels) or labels[-1].isdigit():
        raise InvalidDomain(DOMAIN_MESSAGE)
    return host


def normalize_domain(raw: str) -> str | None:
    """'https://www.Stripe.com:443/about' -> 'stripe.com'; None when it is not a hostname."""
    try:
        return domain_normalized(raw)
    except InvalidDomain:
        return None


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
