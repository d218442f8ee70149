"""Normalisation of what a contact is matched on and what providers find for it: the person
key for reusing past results, email addresses, phone numbers (E.164 in the wanted countries).

Host names, domains and LinkedIn URLs are shared with other apps: ``apps.core.text``.
"""

from __future__ import annotations

import hashlib
from typing import Any

import phonenumbers

from apps.core.text import ascii_fold, normalize_linkedin

_PHONE_TYPES = {
    phonenumbers.PhoneNumberType.MOBILE: "mobile",
    phonenumbers.PhoneNumberType.FIXED_LINE: "landline",
    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE: "unknown",
    phonenumbers.PhoneNumberType.VOIP: "voip",
    phonenumbers.PhoneNumberType.TOLL_FREE: "toll_free",
}


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


def normalize_email(value: Any) -> str | None:
    """The address trimmed and lowercased; None unless it looks like ``local@host.tld``."""
    if not isinstance(value, str):
        return None
    value = value.strip().lower()
    local, _, domain = value.partition("@")
    if (
        not local
        or "@" in domain
        or any(c.isspace() for c in value)
        or "." not in domain
        or "" in domain.split(".")
    ):
        return None
    return value


def normalize_phones(phones: list[Any], country_codes: list[str]) -> list[dict[str, str]]:
    """E.164 numbers, valid per ``phonenumbers``, in ``country_codes`` (any when empty).

    A number without a ``+`` is read as a national number of each wanted country in turn
    (the first under which it is valid wins), so ``(415) 555-2671`` is found for
    ``["FR", "US"]`` as well as for ``["US"]``; with no wanted country it cannot be placed
    and is dropped.
    """
    wanted = [c.upper() for c in country_codes if isinstance(c, str) and c]
    result: list[dict[str, str]] = []
    seen: set[str] = set()
    if not isinstance(phones, list):
        return result
    for item in phones:
        raw = item.get("number") if isinstance(item, dict) else item
        if not isinstance(raw, str) or not raw.strip():
            continue
        parsed = _parse_phone(raw.strip(), wanted)
        if parsed is None:
            continue
        country = phonenumbers.region_code_for_number(parsed)
        if wanted and country not in wanted:
            continue
        number = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
        if number in seen:
            continue
        seen.add(number)
        kind = item.get("type") if isinstance(item, dict) else None
        if not isinstance(kind, str) or not kind or kind == "unknown":
            kind = _PHONE_TYPES.get(phonenumbers.number_type(parsed), "unknown")
        result.append({"number": number, "type": kind, "country": country})
    return result


def _parse_phone(raw: str, regions: list[str]) -> phonenumbers.PhoneNumber | None:
    """The valid reading of ``raw``: as international, else national in one of ``regions``."""
    for region in [None] if raw.startswith("+") else regions:
        try:
            parsed = phonenumbers.parse(raw, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(parsed):
            return parsed
    return None
