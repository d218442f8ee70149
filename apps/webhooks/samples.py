"""Sample ``data`` for each event type, sent by POST /webhooks/{id}/test."""

from __future__ import annotations

from typing import Any

_CONTACT: dict[str, Any] = {
    "enrichment_id": "00000000-0000-4000-8000-000000000000",
    "status": "finished",
    "first_name": "Sarah",
    "last_name": "Chen",
    "company_name": "Stripe",
    "domain": "stripe.com",
    "linkedin_url": "https://www.linkedin.com/in/sarahchen",
    "enrichment_type": ["email"],
    "result": {
        "status": "VERIFIED",
        "email": "sarah.chen@stripe.com",
        "email_status": "valid",
        "personal_email": None,
        "phones": [],
        "job_title": "Head of Growth",
        "company_domain": "stripe.com",
        "confidence": 97,
        "providers": {"email": "sandbox"},
    },
    "credits_charged": 0,
    "sandbox": True,
    "bulk_id": None,
    "custom": {"hubspot_id": "4447901"},
    "attempts": [
        {"provider": "sandbox", "kind": "email", "outcome": "hit", "duration_ms": 3, "error": None}
    ],
    "created_at": "2026-05-19T14:30:00.000Z",
    "finished_at": "2026-05-19T14:30:01.000Z",
}

_BULK: dict[str, Any] = {
    "bulk_id": "00000000-0000-4000-8000-000000000001",
    "status": "completed",
    "total": 3,
    "finished": 3,
    "verified": 2,
    "not_found": 1,
    "no_credits": 0,
    "failed": 0,
    "credits_used": 2,
    "created_at": "2026-05-19T14:30:00.000Z",
    "completed_at": "2026-05-19T14:30:04.000Z",
}

# contact.added_to_list: prospiq's payload (list_id, list_name, contact_email, contact_name,
# company, job_title) with Sluice's ids, as apps.enrichment.services.lists builds it.
_ADDED_TO_LIST: dict[str, Any] = {
    "list_id": "00000000-0000-4000-8000-000000000002",
    "list_name": "Q2 SaaS targets",
    "enrichment_id": _CONTACT["enrichment_id"],
    "status": "finished",
    "contact_email": "sarah.chen@stripe.com",
    "contact_name": "Sarah Chen",
    "company": "Stripe",
    "job_title": "Head of Growth",
    "bulk_id": None,
    "custom": {"hubspot_id": "4447901"},
    "added_at": "2026-05-19T14:31:00.000Z",
}


def sample_data(event_type: str, *, endpoint_data: dict[str, Any]) -> dict[str, Any]:
    if event_type in ("contact.enriched", "contact.verified"):
        return dict(_CONTACT)
    if event_type == "bulk.completed":
        return dict(_BULK)
    if event_type == "contact.added_to_list":
        return dict(_ADDED_TO_LIST)
    if event_type == "credits.low":
        return {"account_id": "sample", "credits": 42, "threshold": 100}
    if event_type == "credits.exhausted":
        return {"account_id": "sample", "credits": 0, "threshold": 100}
    return endpoint_data
