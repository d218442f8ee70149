"""People Data Labs Person Enrichment (``GET /v5/person/enrich``): email, phone, personal email.

Documented shape (docs.peopledatalabs.com, "Output Response - Person Enrichment API"):
200 ``{"status": 200, "likelihood": 1-10, "data": {"work_email", "personal_emails",
"mobile_phone", "phone_numbers", "job_title", "job_company_website", ...}}``; no match is an
HTTP 404 ``{"status": 404, "error": {"type": "not_found", "message"}}``. The key goes in the
``X-Api-Key`` header. A 429 carries ``x-ratelimit-reset`` (when the per-minute window
resets) rather than ``Retry-After``. ``required`` makes PDL answer 404 (and charge nothing)
when the profile lacks the field we are after.
"""

from __future__ import annotations

from typing import Any

import requests

from apps.providers.base import ContactQuery, Found
from apps.providers.http import HttpProvider, malformed, parse_reset_time

REQUIRED_FIELD = {
    "email": "work_email",
    "phone": "phone_numbers",
    "personal_email": "personal_emails",
}


class PeopleDataLabsProvider(HttpProvider):
    name = "pdl"
    kinds = frozenset({"email", "phone", "personal_email"})
    cost = 1
    default_base_url = "https://api.peopledatalabs.com"

    def lookup(
        self, query: ContactQuery, kind: str, *, timeout: tuple[float, float] | None = None
    ) -> Found | None:
        if kind not in REQUIRED_FIELD:
            return None
        params: dict[str, str] = {
            "first_name": query.first_name,
            "last_name": query.last_name,
            "required": REQUIRED_FIELD[kind],
        }
        company = query.domain or query.company_name
        if company:
            params["company"] = company
        if query.linkedin_url:
            params["profile"] = query.linkedin_url
        if not company and not query.linkedin_url:
            return None  # PDL refuses a bare name (400): nothing to ask
        body = self.request(
            "GET",
            "/v5/person/enrich",
            params=params,
            headers={"X-Api-Key": self.api_key},
            timeout=timeout,
        )
        if body is None:
            return None
        data = body.get("data")
        likelihood = body.get("likelihood")
        if not isinstance(data, dict):
            raise malformed(self.name, "no data object")
        if not isinstance(likelihood, int) or isinstance(likelihood, bool):
            raise malformed(self.name, "likelihood is not an integer")
        confidence = max(0, min(100, likelihood * 10))
        extra = _extra(data)
        if kind == "email":
            email = data.get("work_email")
            if not email or not isinstance(email, str):
                return None
            # PDL does not verify deliverability, so the status is honestly "unknown".
            return Found(
                data={"email": email, "email_status": "unknown", **extra}, confidence=confidence
            )
        if kind == "phone":
            phones = _phones(data)
            return (
                Found(data={"phones": phones, **extra}, confidence=confidence) if phones else None
            )
        personal = data.get("personal_emails")
        if not isinstance(personal, list) or not personal or not isinstance(personal[0], str):
            return None
        return Found(data={"personal_email": personal[0], **extra}, confidence=confidence)

    def retry_after(self, response: requests.Response) -> float | None:
        # PDL's 429 says when its fixed rate-limit window resets in ``x-ratelimit-reset``
        # (an ISO UTC timestamp; epoch seconds in older API versions), not in Retry-After.
        waited = super().retry_after(response)
        if waited is None and response.status_code == 429:
            waited = parse_reset_time(response.headers.get("x-ratelimit-reset"))
        return waited

    def error_message(self, body: dict[str, Any]) -> str | None:
        error = body.get("error")
        if isinstance(error, dict):
            return error.get("message") or error.get("type")
        return None


def _phones(data: dict[str, Any]) -> list[dict[str, str]]:
    phones: list[dict[str, str]] = []
    mobile = data.get("mobile_phone")
    if isinstance(mobile, str) and mobile:
        phones.append({"number": mobile, "type": "mobile"})
    others = data.get("phone_numbers")
    if isinstance(others, list):
        for number in others:
            if isinstance(number, str) and number and number != mobile:
                phones.append({"number": number, "type": "unknown"})
    return phones


def _extra(data: dict[str, Any]) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if isinstance(data.get("job_title"), str) and data["job_title"]:
        extra["job_title"] = data["job_title"]
    website = data.get("job_company_website")
    if isinstance(website, str) and website:
        extra["company_domain"] = website.lower().removeprefix("www.")
    return extra
