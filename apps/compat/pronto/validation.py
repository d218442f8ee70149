"""Pronto request bodies, validated by Sluice's own cleaners (``apps.enrichment.validation``).

The dialect only renames: ``firstname``/``lastname`` become ``first_name``/``last_name`` on the
way in and back again in the 422's field paths, and it adds the two rules Pronto has and
Sluice does not (one enrichment type per request; ``enrichment_type`` and the others given once
per bulk, not per contact). Every other rule, message and limit is the service's.
"""

from __future__ import annotations

import re
from typing import Any

from apps.enrichment.validation import (
    CleanBulk,
    CleanContact,
    Problems,
    clean_bulk,
    clean_contact,
    invalid,
)

# The body format this dialect's clients' webhook_url receives (webhooks.py registers it).
WEBHOOK_FORMAT = "pronto"

# Pronto's name -> Sluice's, for the fields whose names differ.
RENAMED = {"firstname": "first_name", "lastname": "last_name"}
_BACK = {sluice: pronto for pronto, sluice in RENAMED.items()}
# What one contact of a bulk may carry; the rest is given once for the batch.
CONTACT_FIELDS = ("firstname", "lastname", "company_name", "domain", "linkedin_url", "custom")
BATCH_FIELDS = ("enrichment_type", "phone_country_codes", "webhook_url")
SINGLE_FIELDS = frozenset(CONTACT_FIELDS + BATCH_FIELDS)
BULK_FIELDS = frozenset(("contacts", *BATCH_FIELDS))

ONE_TYPE_MESSAGE = 'Pass exactly one enrichment type: ["email"], ["phone"] or ["personal_email"].'
REQUIRED_MESSAGE = "This field is required."
UNKNOWN_MESSAGE = "Unknown field."

_LAST_SEGMENT = re.compile(r"(?:(?<=\.)|^)(first_name|last_name)$")
# A bulk's contacts never carry their own enrichment_type here: the service's complaint about
# one (required, when the batch's is missing or invalid) is already said at the top level.
_CONTACT_TYPE = re.compile(r"^contacts\[\d+\]\.enrichment_type$")


def pronto_path(path: str) -> str:
    """A Sluice field path in Pronto's names (``contacts[3].last_name`` ->
    ``contacts[3].lastname``)."""
    return _LAST_SEGMENT.sub(lambda m: _BACK[m.group(1)], path)


def _renamed(data: dict[str, Any], allowed: frozenset[str], prefix: str, errors: dict) -> dict:
    """``data`` with Sluice's names for Pronto's fields; fields Pronto does not have are
    refused under their own name, as Sluice refuses unknown fields."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in allowed:
            out[RENAMED.get(key, key)] = value
        else:
            errors.setdefault(f"{prefix}{key}", UNKNOWN_MESSAGE)
    return out


def _check_one_type(data: dict[str, Any], errors: dict[str, str], *, required: bool) -> None:
    value = data.get("enrichment_type")
    if value is None:
        if required:
            errors.setdefault("enrichment_type", REQUIRED_MESSAGE)
    elif isinstance(value, list) and len(value) > 1:
        errors.setdefault("enrichment_type", ONE_TYPE_MESSAGE)


def _merged(
    own: dict[str, str], sluice: dict[str, str], *, skip: re.Pattern[str] | None = None
) -> dict[str, str]:
    """The dialect's problems first, then the service's in Pronto's names."""
    errors = dict(own)
    for path, message in sluice.items():
        if skip is None or not skip.match(path):
            errors.setdefault(pronto_path(path), message)
    return errors


def contact_validated(data: dict[str, Any], *, consent: bool) -> CleanContact:
    """``POST contacts/single_enrich``'s body, clean; the 422 (``InvalidRequest``) otherwise."""
    errors: dict[str, str] = {}
    translated = _renamed(data, SINGLE_FIELDS, "", errors)
    _check_one_type(data, errors, required=False)  # a missing one: the service says so
    problems = Problems()
    clean = clean_contact(translated, problems=problems, consent=consent)
    errors = _merged(errors, problems.errors)
    if clean is None or errors:
        raise invalid(errors)
    clean.webhook_format = WEBHOOK_FORMAT
    return clean


def bulk_validated(data: dict[str, Any], *, consent: bool, bulk_max: int) -> CleanBulk:
    """``POST contacts/bulk_enrich``'s body, clean; the 422 otherwise (all or nothing).

    The bulk's own ``webhook_url`` is dropped once its contacts have inherited it: Pronto
    posts one payload per contact and nothing when the batch ends, so a Pronto client is
    never sent Sluice's ``bulk.completed``.
    """
    errors: dict[str, str] = {}
    translated = _renamed(data, BULK_FIELDS, "", errors)
    _check_one_type(data, errors, required=True)
    contacts = data.get("contacts")
    if isinstance(contacts, list):
        translated["contacts"] = [
            _renamed(item, frozenset(CONTACT_FIELDS), f"contacts[{index}].", errors)
            if isinstance(item, dict)
            else item
            for index, item in enumerate(contacts)
        ]
    clean, sluice_errors = clean_bulk(translated, consent=consent, bulk_max=bulk_max)
    errors = _merged(errors, sluice_errors, skip=_CONTACT_TYPE)
    if clean is None or errors:
        raise invalid(errors)
    for contact in clean.contacts:
        contact.webhook_format = WEBHOOK_FORMAT
    clean.webhook_format = WEBHOOK_FORMAT
    clean.webhook_url = ""
    return clean
