"""prospiq's request bodies translated into Sluice's and validated by Sluice's cleaners
(``apps.enrichment.validation``); only prospiq's own extra rules are checked here, first.

Problems are recorded under prospiq's field names: those Sluice's cleaners find are renamed
(``prospiq_path``), after this layer's own, keeping the first message per field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from apps.accounts.models import Account
from apps.core.errors import InvalidRequest
from apps.core.text import normalize_domain
from apps.enrichment.validation import (
    CleanBulk,
    CleanContact,
    Problems,
    clean_bulk,
    clean_contact,
    invalid,
)

from . import shapes
from .webhooks import FORMAT

TYPES = {"email": ["email"], "phone": ["phone"], "both": ["email", "phone"]}
TYPE_MESSAGE = "Must be one of email, phone or both."
MIN_LENGTH = 2
# Sluice's optional contact fields a prospiq body may also carry (docs/compat.md): a phone
# lookup needs a LinkedIn URL, and ``custom`` is echoed in every webhook.
CONTACT_EXTENSIONS = ("linkedin_url", "custom", "phone_country_codes")
CONTACT_KEYS = frozenset({"first_name", "last_name", "company", *CONTACT_EXTENSIONS})
ENRICH_KEYS = CONTACT_KEYS | {"type", "fields"}
BULK_KEYS = frozenset({"contacts", "type", "webhook_url", "phone_country_codes"})

# Sluice's field name (the last part of a path) -> prospiq's.
_NAMES = {
    "company_name": "company",
    "domain": "company",
    "enrichment_type": "type",
    "url": "target_url",
    "events": "event",
}
_LAST = re.compile(r"(^|\.)([A-Za-z_]+)$")


def prospiq_path(path: str) -> str:
    """``contacts[3].company_name`` -> ``contacts[3].company``; other paths unchanged."""
    return _LAST.sub(lambda m: m.group(1) + _NAMES.get(m.group(2), m.group(2)), path)


def _merge(problems: Problems, sluice_errors: dict[str, str]) -> None:
    for path, message in sluice_errors.items():
        problems.add(prospiq_path(path), message)


def renamed(exc: InvalidRequest) -> InvalidRequest:
    """A 422 a Sluice service raised, its fields named as prospiq names them."""
    problems = Problems()
    _merge(problems, {str(k): v for k, v in exc.details.items()})
    return InvalidRequest(exc.message, code=exc.code, details=problems.errors)


@dataclass(frozen=True)
class EnrichRequest:
    contact: CleanContact
    fields: tuple[str, ...]  # the result fields the answer keeps


def _at(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _min_length(data: dict[str, Any], name: str, path: str, problems: Problems) -> None:
    """The seed's "Must be 2+ characters." (only on a string: Sluice's cleaner names a
    missing value or another type)."""
    value = data.get(name)
    if isinstance(value, str) and value.strip() and len(value.strip()) < MIN_LENGTH:
        problems.add(path, f"Must be {MIN_LENGTH}+ characters.")


def _kinds(value: Any, path: str, problems: Problems) -> list[str]:
    if value is None:
        return TYPES["email"]
    if not isinstance(value, str) or value not in TYPES:
        problems.add(path, TYPE_MESSAGE)
        return TYPES["email"]  # the rest of the body is still checked
    return TYPES[value]


def _contact(data: dict[str, Any], prefix: str, problems: Problems) -> dict[str, Any]:
    """A prospiq contact as Sluice's: ``company`` is a domain when it reads as one, else a
    company name; the extensions pass through; anything else is an unknown field."""
    _min_length(data, "first_name", _at(prefix, "first_name"), problems)
    _min_length(data, "company", _at(prefix, "company"), problems)
    raw_company = data.get("company")
    if raw_company is None:
        problems.add(_at(prefix, "company"), "This field is required.")
    elif not isinstance(raw_company, str):
        problems.add(_at(prefix, "company"), "Must be a string.")
    elif not raw_company.strip():
        problems.add(_at(prefix, "company"), "This field may not be blank.")
    sluice = {k: data[k] for k in ("first_name", "last_name", *CONTACT_EXTENSIONS) if k in data}
    if isinstance(raw_company, str) and raw_company.strip():
        key = "domain" if normalize_domain(raw_company) else "company_name"
        sluice[key] = raw_company
    return sluice


def _unknown(data: dict[str, Any], known: frozenset[str], prefix: str, problems: Problems) -> None:
    for name in sorted(set(data) - known):
        problems.add(_at(prefix, name), "Unknown field.")


def _fields(value: Any, problems: Problems) -> tuple[str, ...]:
    if value is None:
        return shapes.RESULT_FIELDS
    allowed = ", ".join(shapes.RESULT_FIELDS)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        problems.add("fields", f"Must be a non-empty list of: {allowed}.")
        return ()
    unknown = [v for v in value if v not in shapes.RESULT_FIELDS]
    if unknown:
        problems.add("fields", f"Unknown field '{unknown[0]}'; allowed: {allowed}.")
        return ()
    return tuple(value)


def enrich_validated(data: dict[str, Any], *, account: Account) -> EnrichRequest:
    """``POST /enrich``'s body, clean; the 422 (``InvalidRequest``) otherwise."""
    problems = Problems()
    kinds = _kinds(data.get("type"), "type", problems)
    fields = _fields(data.get("fields"), problems)
    sluice = _contact(data, "", problems)
    _unknown(data, ENRICH_KEYS, "", problems)
    sluice["enrichment_type"] = kinds
    found = Problems()
    clean = clean_contact(sluice, problems=found, consent=account.personal_email_consent)
    _merge(problems, found.errors)
    if clean is None or problems.errors:
        raise invalid(problems.errors)
    return EnrichRequest(contact=clean, fields=fields)


def bulk_validated(data: dict[str, Any], *, account: Account) -> CleanBulk:
    """``POST /enrich/bulk``'s body, clean; the 422 otherwise. All or nothing, as Sluice's."""
    problems = Problems()
    kinds = _kinds(data.get("type"), "type", problems)
    _unknown(data, BULK_KEYS, "", problems)
    sluice: dict[str, Any] = {"enrichment_type": kinds}
    for name in ("webhook_url", "phone_country_codes"):
        if name in data:
            sluice[name] = data[name]
    contacts = data.get("contacts")
    if isinstance(contacts, list):
        translated: list[Any] = []
        for index, item in enumerate(contacts):
            if not isinstance(item, dict):
                translated.append(item)  # Sluice's cleaner names it
                continue
            prefix = f"contacts[{index}]"
            translated.append(_contact(item, prefix, problems))
            _unknown(item, CONTACT_KEYS, prefix, problems)
        sluice["contacts"] = translated
    clean, errors = clean_bulk(
        sluice, consent=account.personal_email_consent, bulk_max=account.plan.bulk_max or 0
    )
    if "contacts" in errors:
        # Not a list, or over the plan's maximum: that alone, as Sluice's own answer.
        raise InvalidRequest(details={"contacts": errors["contacts"]})
    _merge(problems, errors)
    if clean is None or problems.errors:
        raise invalid(problems.errors)
    # prospiq's webhook_url gets the completion event only, not one event per contact.
    for contact in clean.contacts:
        contact.webhook_url = ""
    clean.webhook_format = FORMAT
    return clean


SUBSCRIBE_KEYS = frozenset({"event", "target_url"})


def subscribe_validated(data: dict[str, Any]) -> tuple[str, str]:
    """``POST /subscribe``'s body: (Sluice event type, target URL); the URL's own rules
    (https, public address) are the endpoint service's."""
    problems = Problems()
    name = data.get("event")
    sluice_type = shapes.event_type(name) if isinstance(name, str) else None
    if name is None:
        problems.add("event", "This field is required.")
    elif sluice_type is None:
        problems.add("event", f"Must be one of {', '.join(shapes.EVENTS)}.")
    url = data.get("target_url")
    if url is None:
        problems.add("target_url", "This field is required.")
    elif not isinstance(url, str) or not url.strip():
        problems.add("target_url", "Must be a non-empty string.")
    _unknown(data, SUBSCRIBE_KEYS, "", problems)
    if problems.errors or sluice_type is None or not isinstance(url, str):
        raise invalid(problems.errors)
    return sluice_type, url.strip()


def subscription_id(data: dict[str, Any]) -> str:
    """``POST /webhooks/test``'s ``subscription_id`` (its existence is checked by the read)."""
    problems = Problems()
    value = data.get("subscription_id")
    if value is None:
        problems.add("subscription_id", "This field is required.")
    elif not isinstance(value, str) or not value.strip():
        problems.add("subscription_id", "Must be a non-empty string.")
    _unknown(data, frozenset({"subscription_id"}), "", problems)
    if problems.errors:
        raise invalid(problems.errors)
    return str(value).strip()


def event_name_validated(name: str) -> str:
    """The Sluice event type of ``GET /webhooks/poll/{event}``'s event."""
    sluice_type = shapes.event_type(name)
    if sluice_type is None:
        raise invalid({"event": f"Must be one of {', '.join(shapes.EVENTS)}."})
    return sluice_type
