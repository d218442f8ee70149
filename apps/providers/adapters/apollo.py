"""Apollo People Enrichment (``POST /api/v1/people/match``): work and personal emails.

Documented shape (docs.apollo.io, "People Enrichment"): parameters ``first_name``,
``last_name``, ``domain``, ``organization_name``, ``linkedin_url``,
``reveal_personal_emails``; the key in the ``x-api-key`` header; the answer is
``{"person": {...}}`` with ``email``, ``email_status`` (``verified``, ``guessed``,
``unavailable``...), ``personal_emails``, ``title`` and ``organization.primary_domain``, or
``{"person": null}`` when nobody matched. Apollo delivers mobile phones asynchronously to a
webhook, so this adapter does not serve ``phone``.
"""

from __future__ import annotations

from typing import Any

from apps.providers.base import ContactQuery, Found
from apps.providers.http import HttpProvider, malformed

# Apollo gives no numeric score: a verified address is near-certain; a guessed or
# extrapolated one sits below the default threshold (80) on purpose, so the waterfall keeps
# looking for a verified one elsewhere.
CONFIDENCE = {"verified": 95, "likely to engage": 85, "guessed": 70, "extrapolated": 70}
EMAIL_STATUS = {"verified": "valid", "likely to engage": "unknown"}
NO_EMAIL = {"unavailable", "bounced", "invalid"}


class ApolloProvider(HttpProvider):
    name = "apollo"
    kinds = frozenset({"email", "personal_email"})
    cost = 1
    default_base_url = "https://api.apollo.io"

    def lookup(
        self, query: ContactQuery, kind: str, *, timeout: tuple[float, float] | None = None
    ) -> Found | None:
        params: dict[str, str] = {"first_name": query.first_name, "last_name": query.last_name}
        if query.domain:
            params["domain"] = query.domain
        if query.company_name:
            params["organization_name"] = query.company_name
        if query.linkedin_url:
            params["linkedin_url"] = query.linkedin_url
        if kind == "personal_email":
            params["reveal_personal_emails"] = "true"
        body = self.request(
            "POST",
            "/api/v1/people/match",
            params=params,
            headers={"x-api-key": self.api_key, "Content-Type": "application/json"},
            timeout=timeout,
        )
        if body is None:
            return None
        if "person" not in body:
            raise malformed(self.name, "no person key")
        person = body["person"]
        if person is None:
            return None
        if not isinstance(person, dict):
            raise malformed(self.name, "person is not an object")
        extra = _extra(person)
        if kind == "email":
            email = person.get("email")
            status = str(person.get("email_status") or "").lower()
            # Apollo masks addresses the plan has not unlocked: that is not an email.
            if not isinstance(email, str) or not email or status in NO_EMAIL:
                return None
            if email.startswith("email_not_unlocked@"):
                return None
            return Found(
                data={"email": email, "email_status": EMAIL_STATUS.get(status, "unknown"), **extra},
                confidence=CONFIDENCE.get(status, 60),
            )
        if kind == "personal_email":
            personal = person.get("personal_emails")
            if not isinstance(personal, list) or not personal or not isinstance(personal[0], str):
                return None
            return Found(data={"personal_email": personal[0], **extra}, confidence=90)
        return None

    def error_message(self, body: dict[str, Any]) -> str | None:
        for key in ("error", "message", "error_message"):
            if isinstance(body.get(key), str):
                return body[key]
        return None


def _extra(person: dict[str, Any]) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if isinstance(person.get("title"), str) and person["title"]:
        extra["job_title"] = person["title"]
    organization = person.get("organization")
    if isinstance(organization, dict) and isinstance(organization.get("primary_domain"), str):
        extra["company_domain"] = organization["primary_domain"].lower()
    return extra
