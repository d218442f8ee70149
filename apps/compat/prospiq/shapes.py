"""prospiq's JSON shapes, built from Sluice's own representations (``contact_data``,
``endpoint_data``, the stored event body): one place for the field mapping (docs/compat.md),
shared by the API responses and the webhook bodies."""

from __future__ import annotations

from typing import Any

import phonenumbers
from django.conf import settings

# prospiq's per-contact statuses; Sluice's FAILED (every provider errored: nothing charged)
# has no prospiq name, and NOT_FOUND is what a prospiq client already handles for it.
STATUSES = ("VERIFIED", "NOT_FOUND", "NO_CREDITS")
_STATUS = {"VERIFIED": "VERIFIED", "NOT_FOUND": "NOT_FOUND", "NO_CREDITS": "NO_CREDITS"}
PENDING = "PENDING"

# What ``fields`` may name (the seed's list): the result fields a response may leave out.
RESULT_FIELDS = ("email", "phone", "job_title", "company_domain", "confidence")

# prospiq's phone types are mobile, direct and office. Sluice's come from phonenumbers
# (mobile, landline, voip, toll_free, unknown) or a vendor (Hunter's "work": a number found on
# the company's pages).
PHONE_TYPES = ("mobile", "direct", "office")
_PHONE_TYPE = {"mobile": "mobile", "work": "office", "toll_free": "office"}

# The event types a prospiq subscription may name, with the catalogue's labels. The names
# are Sluice's own: prospiq's five are spelled alike (contact.added_to_list fires when a
# contact is added through Sluice's /api/v1/lists or a bulk's list_id). contact.enriched and
# endpoint.disabled are Sluice's additions.
EVENT_LABELS = {
    "contact.verified": "New verified contact",
    "credits.low": "Credits running low (below {threshold})",
    "credits.exhausted": "Credits exhausted (0)",
    "bulk.completed": "Bulk enrichment job completed",
    "contact.added_to_list": "Contact added to a list",
    "contact.enriched": "Contact enrichment finished, whatever the outcome (Sluice)",
    "endpoint.disabled": "A subscription was deactivated after failing deliveries (Sluice)",
}
EVENTS = tuple(EVENT_LABELS)
# Sluice event type -> the name prospiq's bodies, headers and catalogue use. Identity today;
# a type whose prospiq name differed would be mapped here (and back in ``event_type``).
EVENT_NAMES = {name: name for name in EVENTS}
_EVENT_TYPES = {prospiq: sluice for sluice, prospiq in EVENT_NAMES.items()}


def event_name(sluice_type: str) -> str:
    return EVENT_NAMES.get(sluice_type, sluice_type)


def event_type(prospiq_name: str) -> str | None:
    """The Sluice event type of a prospiq event name; None when it is not subscribable."""
    return _EVENT_TYPES.get(prospiq_name)


def available_events() -> list[dict[str, str]]:
    threshold = settings.CREDITS_LOW_THRESHOLD
    return [
        {"event": name, "label": label.format(threshold=threshold)}
        for name, label in EVENT_LABELS.items()
    ]


def status(result_status: str | None) -> str:
    return _STATUS.get(result_status or "", "NOT_FOUND")


def phone(item: dict[str, Any]) -> dict[str, str]:
    """``{"number": "+15550000000", "type": "mobile", "country": "US"}`` ->
    ``{"number": "+1 (555) 000-0000", "type": "mobile"}``: North American numbers as prospiq
    writes them, others in the international format (``+44 20 7946 0000``)."""
    raw = str(item.get("number") or "")
    try:
        parsed = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        number = raw
    else:
        if parsed.country_code == 1:
            number = "+1 " + phonenumbers.format_number(
                parsed, phonenumbers.PhoneNumberFormat.NATIONAL
            )
        else:
            number = phonenumbers.format_number(
                parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL
            )
    return {"number": number, "type": _PHONE_TYPE.get(str(item.get("type")), "direct")}


def company(contact: dict[str, Any]) -> str:
    """What the client sent as ``company``: stored as Sluice's company_name, or as its domain
    (normalised) when it was one."""
    return contact.get("company_name") or contact.get("domain") or ""


def contact_result(contact: dict[str, Any]) -> dict[str, Any]:
    """A finished contact (``contact_data``) as prospiq's enrich result: ``status``, then each
    result field only when known, as the seed shows them, and ``search_id``."""
    result = contact.get("result") or {}
    out: dict[str, Any] = {"status": status(result.get("status"))}
    if result.get("email"):
        out["email"] = result["email"]
    if result.get("phones"):
        out["phone"] = [phone(p) for p in result["phones"]]
    if result.get("job_title"):
        out["job_title"] = result["job_title"]
    # The resolved domain, else the one the client gave: the seed shows it on NOT_FOUND too.
    domain = result.get("company_domain") or contact.get("domain")
    if domain:
        out["company_domain"] = domain
    if out["status"] == "VERIFIED" and result.get("confidence") is not None:
        out["confidence"] = result["confidence"]
    out["search_id"] = contact["enrichment_id"]
    return out


def bulk_result(contact: dict[str, Any]) -> dict[str, Any]:
    """One entry of a bulk answer's ``results``: the input echoed, then the result."""
    return {
        "first_name": contact["first_name"],
        "last_name": contact["last_name"],
        "company": company(contact),
        **contact_result(contact),
    }


def pending_result(contact: dict[str, Any]) -> dict[str, Any]:
    """A bulk contact still running when the answer is given (the 202)."""
    return {
        "first_name": contact["first_name"],
        "last_name": contact["last_name"],
        "company": company(contact),
        "status": PENDING,
        "search_id": contact["enrichment_id"],
    }


def bulk_counts(bulk: dict[str, Any]) -> dict[str, Any]:
    """The counters of a bulk (``bulk_data``) as prospiq's; FAILED counts as not found."""
    return {
        "total": bulk["total"],
        "verified": bulk["verified"],
        "not_found": bulk["not_found"] + bulk.get("failed", 0),
        "credits_used": bulk["credits_used"],
    }


def subscription(endpoint: dict[str, Any]) -> dict[str, Any]:
    """An endpoint (``endpoint_data``) as a prospiq subscription: one event per subscription."""
    events = endpoint.get("events") or []
    triggered = [t for t in (endpoint.get("last_success_at"), endpoint.get("last_failure_at")) if t]
    return {
        "id": endpoint["id"],
        "event": event_name(events[0]) if len(events) == 1 else ",".join(map(event_name, events)),
        "target_url": endpoint["url"],
        "active": endpoint["active"],
        "consecutive_failures": endpoint.get("consecutive_failures", 0),
        # Same-format UTC timestamps: the larger string is the later moment.
        "last_triggered_at": max(triggered) if triggered else None,
        "last_failure_at": endpoint.get("last_failure_at"),
        "created_at": endpoint.get("created_at"),
    }


def subscription_created(endpoint: dict[str, Any]) -> dict[str, Any]:
    """``POST /subscribe``'s answer, with the secret (shown only here)."""
    shape = subscription(endpoint)
    return {
        "id": shape["id"],
        "event": shape["event"],
        "target_url": shape["target_url"],
        "secret": endpoint["secret"],
        "active": shape["active"],
        "created_at": shape["created_at"],
    }


# --- Webhook bodies ------------------------------------------------------------------------


def _contact_event_data(data: dict[str, Any]) -> dict[str, Any]:
    if data.get("truncated"):  # too large to send whole: ids and where to read the rest
        return {"search_id": data.get("enrichment_id"), **data}
    result = data.get("result") or {}
    phones = result.get("phones") or []
    out: dict[str, Any] = {
        "first_name": data.get("first_name"),
        "last_name": data.get("last_name"),
        "company": company(data),
        "email": result.get("email"),
        "phone": [phone(p) for p in phones] if phones else None,
        "job_title": result.get("job_title"),
        "confidence": result.get("confidence"),
        "search_id": data.get("enrichment_id"),
        "status": status(result.get("status")),
        "company_domain": result.get("company_domain") or data.get("domain"),
    }
    if data.get("custom") is not None:
        out["custom"] = data["custom"]
    return out


def event_data(sluice_type: str, data: Any) -> Any:
    """An event's ``data`` in prospiq's shape for its type (the seed's event types section)."""
    if not isinstance(data, dict):
        return data
    if sluice_type in ("contact.verified", "contact.enriched"):
        return _contact_event_data(data)
    if sluice_type == "bulk.completed":
        if data.get("truncated"):
            return data
        return {
            **bulk_counts(data),
            # Not in Sluice's event (the balance at delivery time would differ per retry).
            "credits_remaining": data.get("credits_remaining"),
            "bulk_id": data.get("bulk_id"),
        }
    if sluice_type == "contact.added_to_list" and not data.get("truncated"):
        # The seed's seven fields, search_id being the enrichment id; Sluice's extras after.
        return {
            "list_id": data.get("list_id"),
            "list_name": data.get("list_name"),
            "contact_email": data.get("contact_email"),
            "contact_name": data.get("contact_name"),
            "company": data.get("company"),
            "job_title": data.get("job_title"),
            "search_id": data.get("enrichment_id"),
            "status": data.get("status"),
            "custom": data.get("custom"),
        }
    if sluice_type == "credits.low":
        return {
            "credits": data.get("credits"),
            "plan": data.get("plan"),
            "threshold": data.get("threshold"),
        }
    if sluice_type == "credits.exhausted":
        return {"credits": data.get("credits"), "plan": data.get("plan")}
    if sluice_type == "endpoint.disabled" and "url" in data and "id" in data:
        return {**subscription(data), "disabled_reason": data.get("disabled_reason")}
    return data


def event_body(payload: dict[str, Any]) -> dict[str, Any]:
    """Sluice's event payload (``{"id", "type", "created_at", "sandbox", "data", "_test"?}``)
    as prospiq's ``{"event", "data", "timestamp"}``; ``_test`` and ``_sandbox`` when set."""
    sluice_type = str(payload.get("type", ""))
    body: dict[str, Any] = {
        "event": event_name(sluice_type),
        "data": event_data(sluice_type, payload.get("data")),
        "timestamp": payload.get("created_at"),
    }
    if payload.get("_test"):
        body["_test"] = True
    if payload.get("sandbox"):
        body["_sandbox"] = True
    return body
