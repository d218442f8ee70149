"""The deterministic sandbox provider used by every ``sk_test_`` key (SPEC §2).

It never touches the network. Email: ``first.last@<company domain>`` (lowercase, ASCII
folded; a name part that folds to nothing is left out); phone: always ``+15550000000``
(mobile); a name containing ``notfound`` is not found.
"""

from __future__ import annotations

import re

from apps.core.text import ascii_fold
from apps.providers.base import ContactQuery, Found, Provider

SANDBOX_PHONE = "+15550000000"


def _local_part(value: str) -> str:
    return re.sub(r"[^a-z0-9]", "", ascii_fold(value).lower())


def _company_domain(query: ContactQuery) -> str:
    if query.domain:
        return query.domain
    slug = _local_part(query.company_name)
    return f"{slug}.com" if slug else "example.com"


class SandboxProvider(Provider):
    name = "sandbox"
    kinds = frozenset({"email", "phone", "personal_email"})
    cost = 0

    def lookup(
        self, query: ContactQuery, kind: str, *, timeout: tuple[float, float] | None = None
    ) -> Found | None:
        full_name = f"{query.first_name} {query.last_name}".lower()
        if "notfound" in full_name.replace(" ", ""):
            return None
        # A name with nothing left after ASCII folding (e.g. written in Han) drops out rather
        # than leaving ".wei@…" or ".@gmail.com", which are not addresses.
        local = ".".join(p for p in map(_local_part, (query.first_name, query.last_name)) if p)
        local = local or "contact"
        if kind == "email":
            domain = _company_domain(query)
            return Found(
                data={
                    "email": f"{local}@{domain}",
                    "email_status": "valid",
                    "company_domain": domain,
                    "job_title": "Sandbox Tester",
                },
                confidence=99,
            )
        if kind == "phone":
            return Found(
                data={"phones": [{"number": SANDBOX_PHONE, "type": "mobile", "country": "US"}]},
                confidence=99,
            )
        if kind == "personal_email":
            return Found(data={"personal_email": f"{local}@gmail.com"}, confidence=99)
        return None
