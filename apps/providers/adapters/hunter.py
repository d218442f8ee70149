"""Hunter Email Finder (``GET /v2/email-finder``): work email and, when known, a phone.

Documented shape (hunter.io/api-documentation/v2): ``{"data": {"email", "score",
"domain", "position", "phone_number", "verification": {"status"}}, "meta": {...}}``;
errors are ``{"errors": [{"id", "code", "details"}]}``. Hunter uses 403 for "rate limit
reached" and 429 for "usage limit reached", so both are worth retrying later; 401 is a bad
key; 451 means the person asked Hunter to stop processing their data, which for us is "not
found" (a miss, not a provider failure that should count towards its circuit breaker).
The key goes in the ``X-API-KEY`` header so it never appears in a URL or a log line.
"""

from __future__ import annotations

from typing import Any

import requests

from apps.providers.base import ContactQuery, Found
from apps.providers.http import RETRYABLE_STATUSES, HttpProvider, malformed

# Hunter's verification statuses -> ours; "invalid" and "disposable" make the email a miss.
EMAIL_STATUS = {
    "valid": "valid",
    "accept_all": "catch_all",
    "unknown": "unknown",
    "webmail": "unknown",
    "invalid": "invalid",
    "disposable": "invalid",
}
# 404: no such resource; 451: "unavailable for legal reasons" (the person opted out).
NOT_FOUND_STATUSES = frozenset({404, 451})


class HunterProvider(HttpProvider):
    name = "hunter"
    kinds = frozenset({"email", "phone"})
    cost = 1
    default_base_url = "https://api.hunter.io"

    def lookup(
        self, query: ContactQuery, kind: str, *, timeout: tuple[float, float] | None = None
    ) -> Found | None:
        params: dict[str, str] = {"first_name": query.first_name, "last_name": query.last_name}
        if query.domain:
            params["domain"] = query.domain
        elif query.company_name:
            params["company"] = query.company_name
        else:
            return None  # Hunter needs a domain or a company: nothing to ask
        body = self.request(
            "GET",
            "/v2/email-finder",
            params=params,
            headers={"X-API-KEY": self.api_key},
            timeout=timeout,
            not_found_statuses=NOT_FOUND_STATUSES,
        )
        if body is None:
            return None
        data = body.get("data")
        if not isinstance(data, dict):
            raise malformed(self.name, "no data object")
        email = data.get("email")
        if not email:
            return None
        if not isinstance(email, str):
            raise malformed(self.name, "email is not a string")
        score = data.get("score")
        if not isinstance(score, int) or isinstance(score, bool):
            raise malformed(self.name, "score is not an integer")
        extra = _extra(data)
        if kind == "email":
            verification = data.get("verification") or {}
            status = verification.get("status") if isinstance(verification, dict) else None
            return Found(
                data={"email": email, "email_status": EMAIL_STATUS.get(status, "unknown"), **extra},
                confidence=max(0, min(100, score)),
            )
        if kind == "phone":
            phone = data.get("phone_number")
            if not phone or not isinstance(phone, str):
                return None
            return Found(
                data={"phones": [{"number": phone, "type": "work"}], **extra},
                confidence=max(0, min(100, score)),
            )
        return None

    def is_retryable(self, response: requests.Response) -> bool:
        # Hunter documents 403 as "You have reached the rate limit" (not a permission error).
        status = response.status_code
        return status == 403 or status in RETRYABLE_STATUSES or status >= 500

    def error_message(self, body: dict[str, Any]) -> str | None:
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return errors[0].get("details") or errors[0].get("id")
        return None


def _extra(data: dict[str, Any]) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if isinstance(data.get("position"), str) and data["position"]:
        extra["job_title"] = data["position"]
    if isinstance(data.get("domain"), str) and data["domain"]:
        extra["company_domain"] = data["domain"].lower()
    return extra
