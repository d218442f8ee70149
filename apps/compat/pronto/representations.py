"""Pronto's JSON shapes, built from Sluice's own representations (``apps.enrichment.selectors``).

``contact_object`` is both ``GET contacts/{id}`` and the body a Pronto client's
``webhook_url`` receives (Pronto: "the same payload is echoed back on GET /contacts/{id} and on
the webhook callback"), so the two can never drift apart.
"""

from __future__ import annotations

from typing import Any

from apps.enrichment.models import BulkJob, Contact

BASE_PATH = "/compat/pronto/api/v2"
# Pronto's words for an email's validation state; "N/A" when none was found (or asked for).
EMAIL_STATUSES = {"valid": "deliverable", "catch_all": "catch-all", "unknown": "unknown"}
NOT_AVAILABLE = "N/A"


def contact_path(enrichment_id: str) -> str:
    return f"{BASE_PATH}/contacts/{enrichment_id}"


def accepted_object(contact: Contact) -> dict[str, Any]:
    """The answer to ``POST contacts/single_enrich``, as the seed page shows it."""
    return {
        "enrichment_id": str(contact.pk),
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "status": contact.status,
        "custom": contact.custom,
    }


def bulk_accepted_object(bulk: BulkJob) -> dict[str, Any]:
    """The answer to ``POST contacts/bulk_enrich``: the job's id under Pronto's name for it."""
    return {"enrichment_id": str(bulk.pk), "status": "queued"}


def contact_object(data: dict[str, Any]) -> dict[str, Any]:
    """Pronto's contact from Sluice's (``selectors.contact_data``, an event's ``data``)."""
    result = data.get("result") or {}
    email = result.get("email")
    personal_email = result.get("personal_email")
    email_status = result.get("email_status")
    return {
        "enrichment_id": data["enrichment_id"],
        "first_name": data["first_name"],
        "last_name": data["last_name"],
        "status": data["status"],
        "email": email,
        "email_status": EMAIL_STATUSES.get(email_status, email_status or NOT_AVAILABLE)
        if email
        else NOT_AVAILABLE,
        "personal_email": personal_email,
        # Sluice keeps a personal email only when a provider vouched for it.
        "personal_email_status": "valid" if personal_email else NOT_AVAILABLE,
        "phone": [phone["number"] for phone in result.get("phones") or []],
        "custom": data.get("custom"),
    }
