"""Validation of enrich and bulk request bodies (SPEC §4), field path -> message.

``CONTACT_REQUEST`` describes a contact's fields once: the OpenAPI schema's request
components (``serializers.py``) and the admin's Request fieldset are built from it, and the
cleaners below enforce its limits. Plain functions rather than DRF serializers: a bulk of
100 contacts is validated in well under a millisecond each, and every message is exactly
the one the contract names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from apps.core.errors import InvalidRequest
from apps.core.text import InvalidDomain, domain_normalized, normalize_linkedin
from apps.webhooks.targets import webhook_url_syntax_problem, webhook_urls_problems

from .normalize import person_key

KINDS = ("email", "phone", "personal_email")
CONSENT_MESSAGE = (
    "You can't use the personal email enrichment feature without consenting with our terms of use"
)
CUSTOM_MAX_BYTES = 4096
CUSTOM_MAX_DEPTH = 3
MAX_CREDITS_LIMIT = 2_147_483_647
# Contact.linkedin_url's column; a longer URL would be a database error, not a 422.
LINKEDIN_URL_MAX_LENGTH = 500
ISO_ALPHA2 = frozenset(
    (
        "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ "
        "BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM "
        "DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS "
        "GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN "
        "KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ "
        "MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM "
        "PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV "
        "SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI "
        "VN VU WF WS YE YT ZA ZM ZW"
    ).split()
)
NAME_MAX_LENGTH = 100
COMPANY_NAME_MAX_LENGTH = 200
_KINDS_SCHEMA = {"enum": list(KINDS)}


@dataclass(frozen=True)
class RequestField:
    """One field of a contact in ``POST /enrich`` and ``/enrich/bulk``: what the OpenAPI
    schema (``serializers.py``) and the admin's Request fieldset are built from, with the
    limits the cleaners below enforce."""

    name: str
    schema: dict[str, Any]  # its JSON Schema, for the OpenAPI document
    required: bool = False
    # May also be given once for a whole bulk (each contact may override it).
    per_batch: bool = False
    description: str = ""


CONTACT_REQUEST: tuple[RequestField, ...] = (
    RequestField(
        "first_name", {"type": "string", "minLength": 1, "maxLength": NAME_MAX_LENGTH}, True
    ),
    RequestField(
        "last_name", {"type": "string", "minLength": 1, "maxLength": NAME_MAX_LENGTH}, True
    ),
    RequestField("company_name", {"type": "string", "maxLength": COMPANY_NAME_MAX_LENGTH}),
    RequestField(
        "domain",
        {"type": "string"},
        description="A host name or URL; normalised (scheme, www., port and path stripped, "
        "IDNA 2008)",
    ),
    RequestField(
        "linkedin_url",
        {"type": "string", "format": "uri", "maxLength": LINKEDIN_URL_MAX_LENGTH},
        description="https://www.linkedin.com/in/<slug>",
    ),
    RequestField(
        "enrichment_type",
        {
            "oneOf": [
                {"type": "array", "items": _KINDS_SCHEMA, "minItems": 1, "uniqueItems": True},
                _KINDS_SCHEMA,
            ]
        },
        required=True,
        per_batch=True,
        description="Distinct kinds; a single string is accepted and wrapped",
    ),
    RequestField(
        "phone_country_codes",
        {"type": "array", "items": {"type": "string", "minLength": 2, "maxLength": 2}},
        per_batch=True,
        description="ISO 3166-1 alpha-2; default: the account's",
    ),
    RequestField(
        "webhook_url",
        {"type": "string", "format": "uri"},
        per_batch=True,
        description="Also receives this contact's contact.enriched (https, public address)",
    ),
    RequestField(
        "custom",
        {"type": ["object", "null"]},
        description=f"JSON object, ≤ {CUSTOM_MAX_BYTES} bytes, depth ≤ {CUSTOM_MAX_DEPTH}; "
        "echoed back",
    ),
    RequestField(
        "max_credits",
        {"type": "integer", "minimum": 0, "maximum": MAX_CREDITS_LIMIT},
        description="Cap on what this contact may be charged",
    ),
)
CONTACT_FIELDS = frozenset(f.name for f in CONTACT_REQUEST)
# For the whole request (a single enrich, a bulk), never per contact of a bulk: the list
# every contact is added to as it is created. Its existence is the view's lookup (404
# ``list_not_found``, ``services.lists.list_for_account``); here only its type.
LIST_ID = RequestField(
    "list_id",
    {"type": ["string", "null"], "format": "uuid"},
    description="A list of this account and mode (GET /lists) to add the contact(s) to as "
    "they are created; another account's, another mode's or an unknown id is 404 "
    "list_not_found",
)


@dataclass
class CleanContact:
    first_name: str
    last_name: str
    company_name: str
    domain: str
    linkedin_url: str
    enrichment_type: list[str]
    phone_country_codes: list[str]
    webhook_url: str
    custom: dict[str, Any] | None
    max_credits: int | None
    person_key: str = ""
    # Set by a vendor dialect: the body format its client's webhook_url receives.
    webhook_format: str = ""
    # The request's list_id (POST /enrich, /enrich/sync), not yet looked up.
    list_id: str | None = None


@dataclass
class Problems:
    """Collects field path -> message; ``prefix`` scopes paths for bulk items."""

    errors: dict[str, str] = field(default_factory=dict)
    # Field path -> webhook URL whose host is still to be resolved (check_webhook_urls).
    webhook_urls: dict[str, str] = field(default_factory=dict)

    def add(self, path: str, message: str) -> None:
        self.errors.setdefault(path, message)


def check_webhook_urls(problems: Problems) -> None:
    """Resolve every webhook host the request named, once each, concurrently, under one
    deadline (WEBHOOK_DNS_TIMEOUT_SECONDS): a bulk of 100 hosts that never answer costs
    the request about that long, not 100 resolver timeouts one after another."""
    pending, problems.webhook_urls = problems.webhook_urls, {}
    refused = webhook_urls_problems(pending.values())
    for path, url in pending.items():
        if url in refused:
            problems.add(path, refused[url])


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _name(data: dict, key: str, path: str, problems: Problems) -> str:
    value = data.get(key)
    if value is None:
        problems.add(path, "This field is required.")
        return ""
    if not isinstance(value, str):
        problems.add(path, "Must be a string.")
        return ""
    value = value.strip()
    if not value:
        problems.add(path, "This field may not be blank.")
    elif len(value) > NAME_MAX_LENGTH:
        problems.add(path, f"Must be at most {NAME_MAX_LENGTH} characters.")
    return value


def _optional_str(data: dict, key: str, path: str, problems: Problems, max_len: int) -> str:
    value = data.get(key)
    if value in (None, ""):
        return ""
    if not isinstance(value, str):
        problems.add(path, "Must be a string.")
        return ""
    value = value.strip()
    if len(value) > max_len:
        problems.add(path, f"Must be at most {max_len} characters.")
    return value


def clean_enrichment_type(value: Any, path: str, problems: Problems) -> list[str]:
    if value is None:
        problems.add(path, "This field is required.")
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        problems.add(path, "Must be a non-empty list of 'email', 'phone', 'personal_email'.")
        return []
    if not all(isinstance(v, str) for v in value):
        problems.add(path, "Every value must be a string.")
        return []
    unknown = [v for v in value if v not in KINDS]
    if unknown:
        problems.add(
            path, f"Unknown enrichment type '{unknown[0]}'; use email, phone or personal_email."
        )
        return []
    if len(set(value)) != len(value):
        problems.add(path, "Values must be distinct.")
        return []
    return list(value)


def clean_country_codes(value: Any, path: str, problems: Problems) -> list[str]:
    if value in (None, []):
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.add(path, "Must be a list of ISO 3166-1 alpha-2 country codes.")
        return []
    codes = [v.strip().upper() for v in value]
    bad = [c for c in codes if c not in ISO_ALPHA2]
    if bad:
        problems.add(path, f"'{bad[0]}' is not an ISO 3166-1 alpha-2 country code.")
        return []
    return list(dict.fromkeys(codes))


def clean_webhook_url(value: Any, path: str, problems: Problems) -> str:
    if value in (None, ""):
        return ""
    if not isinstance(value, str):
        problems.add(path, "Must be a string.")
        return ""
    problem = webhook_url_syntax_problem(value.strip())
    if problem:
        problems.add(path, problem)
        return ""
    problems.webhook_urls[path] = value.strip()
    return value.strip()


def _custom(value: Any, path: str, problems: Problems) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        problems.add(path, "Must be a JSON object.")
        return None
    if (
        len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
        > CUSTOM_MAX_BYTES
    ):
        problems.add(path, f"Must be at most {CUSTOM_MAX_BYTES} bytes serialised.")
        return None
    if _depth(value) > CUSTOM_MAX_DEPTH:
        problems.add(path, f"Must be nested at most {CUSTOM_MAX_DEPTH} levels deep.")
        return None
    return value


def _max_credits(value: Any, path: str, problems: Problems) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        problems.add(path, "Must be an integer greater than or equal to 0.")
        return None
    if value > MAX_CREDITS_LIMIT:
        # The column is a 32-bit integer; a larger cap means "no cap" anyway.
        problems.add(path, f"Must be at most {MAX_CREDITS_LIMIT}.")
        return None
    return value


def clean_contact(
    data: Any,
    *,
    problems: Problems,
    prefix: str = "",
    consent: bool,
    batch: dict[str, Any] | None = None,
    resolve_later: bool = False,
) -> CleanContact | None:
    """Validate one contact; batch-level values (bulk) apply where the contact has none.

    With ``resolve_later`` its webhook host is left in ``problems.webhook_urls`` for the
    caller to resolve together with the others (check_webhook_urls).
    """
    p = (lambda name: f"{prefix}.{name}") if prefix else (lambda name: name)
    if not isinstance(data, dict):
        problems.add(prefix or "non_field_errors", "Must be a JSON object.")
        return None
    before = len(problems.errors)
    batch = batch or {}
    first = _name(data, "first_name", p("first_name"), problems)
    last = _name(data, "last_name", p("last_name"), problems)
    company = _optional_str(
        data, "company_name", p("company_name"), problems, COMPANY_NAME_MAX_LENGTH
    )

    domain = ""
    raw_domain = data.get("domain")
    if raw_domain not in (None, ""):
        if not isinstance(raw_domain, str):
            problems.add(p("domain"), "Must be a string.")
        else:
            try:
                domain = domain_normalized(raw_domain)
            except InvalidDomain as exc:
                problems.add(p("domain"), str(exc))

    linkedin = ""
    raw_linkedin = data.get("linkedin_url")
    if raw_linkedin not in (None, ""):
        if isinstance(raw_linkedin, str) and len(raw_linkedin.strip()) > LINKEDIN_URL_MAX_LENGTH:
            problems.add(
                p("linkedin_url"), f"Must be at most {LINKEDIN_URL_MAX_LENGTH} characters."
            )
        elif not isinstance(raw_linkedin, str) or not normalize_linkedin(raw_linkedin):
            problems.add(
                p("linkedin_url"),
                "Must be an http(s) LinkedIn profile URL such as https://www.linkedin.com/in/name.",
            )
        else:
            linkedin = raw_linkedin.strip()

    if "enrichment_type" in data:
        kinds = clean_enrichment_type(data["enrichment_type"], p("enrichment_type"), problems)
    elif "enrichment_type" in batch:
        kinds = batch["enrichment_type"]
    else:
        kinds = clean_enrichment_type(None, p("enrichment_type"), problems)

    if "email" in kinds and not (domain or company) and p("domain") not in problems.errors:
        problems.add(p("domain"), "The email enrichment needs a domain or a company_name.")
    for kind in ("phone", "personal_email"):
        if kind in kinds and not linkedin and p("linkedin_url") not in problems.errors:
            problems.add(p("linkedin_url"), f"The {kind} enrichment needs a linkedin_url.")
    # A bulk's own enrichment_type is refused once, at its top-level path (clean_bulk).
    inherited = "enrichment_type" not in data and "enrichment_type" in batch
    if "personal_email" in kinds and not consent and not inherited:
        problems.add(p("enrichment_type"), CONSENT_MESSAGE)

    if "phone_country_codes" in data:
        codes = clean_country_codes(data["phone_country_codes"], p("phone_country_codes"), problems)
    else:
        codes = batch.get("phone_country_codes", [])
    if "webhook_url" in data:
        webhook_url = clean_webhook_url(data["webhook_url"], p("webhook_url"), problems)
    else:
        webhook_url = batch.get("webhook_url", "")
    custom = _custom(data.get("custom"), p("custom"), problems)
    max_credits = _max_credits(data.get("max_credits"), p("max_credits"), problems)

    unknown = sorted(set(data) - CONTACT_FIELDS)
    if unknown:
        problems.add(p(unknown[0]), "Unknown field.")
    if not resolve_later:
        check_webhook_urls(problems)

    if len(problems.errors) != before:
        return None
    return CleanContact(
        first_name=first,
        last_name=last,
        company_name=company,
        domain=domain,
        linkedin_url=linkedin,
        enrichment_type=kinds,
        phone_country_codes=codes,
        webhook_url=webhook_url,
        custom=custom,
        max_credits=max_credits,
        person_key=person_key(
            linkedin_url=linkedin, first_name=first, last_name=last, domain=domain
        ),
    )


BULK_FIELDS = frozenset(
    {"contacts", LIST_ID.name} | {f.name for f in CONTACT_REQUEST if f.per_batch}
)


def _list_id(data: Any, problems: Problems) -> tuple[Any, str | None]:
    """``data`` without its ``list_id``, and that id (None when absent or null); a value
    that is not a string is a 422 at ``list_id``."""
    if not isinstance(data, dict) or LIST_ID.name not in data:
        return data, None
    data = dict(data)
    value = data.pop(LIST_ID.name)
    if value is None:
        return data, None
    if not isinstance(value, str):
        problems.add(LIST_ID.name, "Must be a list id (a string).")
        return data, None
    return data, value


@dataclass
class CleanBulk:
    contacts: list[CleanContact]
    enrichment_type: list[str]
    webhook_url: str
    webhook_format: str = ""  # as CleanContact's, for the bulk's own bulk.completed
    list_id: str | None = None  # not yet looked up, as CleanContact's


def clean_bulk(
    data: dict[str, Any], *, consent: bool, bulk_max: int
) -> tuple[CleanBulk | None, dict[str, str]]:
    problems = Problems()
    batch: dict[str, Any] = {}
    if "enrichment_type" in data:
        kinds = clean_enrichment_type(data["enrichment_type"], "enrichment_type", problems)
        if kinds:
            batch["enrichment_type"] = kinds
            if "personal_email" in kinds and not consent:
                problems.add("enrichment_type", CONSENT_MESSAGE)
    if "phone_country_codes" in data:
        batch["phone_country_codes"] = clean_country_codes(
            data["phone_country_codes"], "phone_country_codes", problems
        )
    if "webhook_url" in data:
        batch["webhook_url"] = clean_webhook_url(data["webhook_url"], "webhook_url", problems)
    _, list_id = _list_id(data, problems)
    unknown = sorted(set(data) - BULK_FIELDS)
    if unknown:
        problems.add(unknown[0], "Unknown field.")

    contacts_raw = data.get("contacts")
    if not isinstance(contacts_raw, list) or not contacts_raw:
        problems.add("contacts", "Must be a non-empty list of contacts.")
        return None, problems.errors
    if len(contacts_raw) > bulk_max:
        problems.add(
            "contacts",
            f"At most {bulk_max} contacts per request on this plan."
            if bulk_max
            else "This plan does not allow bulk requests.",
        )
        return None, problems.errors
    if problems.errors:
        return None, problems.errors
    clean: list[CleanContact] = []
    for index, item in enumerate(contacts_raw):
        contact = clean_contact(
            item,
            problems=problems,
            prefix=f"contacts[{index}]",
            consent=consent,
            batch=batch,
            resolve_later=True,
        )
        if contact is not None:
            clean.append(contact)
    check_webhook_urls(problems)
    if problems.errors:
        return None, problems.errors
    return CleanBulk(
        contacts=clean,
        enrichment_type=batch.get("enrichment_type", []),
        webhook_url=batch.get("webhook_url", ""),
        list_id=list_id,
    ), {}


def invalid(errors: dict[str, str]) -> InvalidRequest:
    """The 422; a refused personal_email also names the consent rule in ``error`` (SPEC §4)."""
    message = CONSENT_MESSAGE if CONSENT_MESSAGE in errors.values() else None
    return InvalidRequest(message, details=errors)


def contact_validated(data: Any, *, consent: bool) -> CleanContact:
    """``POST /enrich``'s contact, clean; the 422 (``InvalidRequest``) otherwise."""
    problems = Problems()
    data, list_id = _list_id(data, problems)
    clean = clean_contact(data, problems=problems, consent=consent)
    if clean is None or problems.errors:
        raise invalid(problems.errors)
    clean.list_id = list_id
    return clean


def bulk_validated(data: dict[str, Any], *, consent: bool, bulk_max: int) -> CleanBulk:
    """``POST /enrich/bulk``'s batch, clean; the 422 (``InvalidRequest``) otherwise."""
    clean, errors = clean_bulk(data, consent=consent, bulk_max=bulk_max)
    if clean is None:
        raise invalid(errors)
    return clean


SYNC_TIMEOUT = RequestField(
    "timeout",
    {"type": "number", "minimum": 0, "exclusiveMinimum": True},
    description="Seconds to wait for the result (default ENRICH_SYNC_TIMEOUT_SECONDS, 30; "
    "at most ENRICH_SYNC_MAX_TIMEOUT_SECONDS, 60); past it the answer is the 202 of "
    "POST /enrich",
)


def sync_validated(data: Any, *, consent: bool) -> tuple[CleanContact, float]:
    """``POST /enrich/sync``'s body: a ``POST /enrich`` contact plus ``timeout``; the 422
    names every problem of both at once."""
    problems = Problems()
    timeout = settings.ENRICH_SYNC_TIMEOUT_SECONDS
    if isinstance(data, dict) and "timeout" in data:
        data = dict(data)
        raw = data.pop("timeout")
        most = settings.ENRICH_SYNC_MAX_TIMEOUT_SECONDS
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not 0 < raw <= most:
            problems.add("timeout", f"Must be a number of seconds above 0 and at most {most:g}.")
        else:
            timeout = float(raw)
    data, list_id = _list_id(data, problems)
    clean = clean_contact(data, problems=problems, consent=consent)
    if clean is None or problems.errors:
        raise invalid(problems.errors)
    clean.list_id = list_id
    return clean, timeout
