"""The provider simulator: answers like Hunter, People Data Labs and Apollo, locally.

A stdlib ``ThreadingHTTPServer`` (HTTP/1.1 keep-alive, one thread per connection) serving:

* ``GET  /v2/email-finder``     Hunter Email Finder shape
* ``GET  /v5/person/enrich``    People Data Labs Person Enrichment shape
* ``POST /api/v1/people/match`` Apollo People Enrichment shape
* ``GET  /_simulator/people``   the listed synthetic data set (``?offset=&limit=``)
* ``GET  /healthz``

Behaviour per vendor comes from ``SimulatorConfig`` (environment variables, listed in
docs/providers.md). Errors are random draws (429 with ``Retry-After`` or 503), latency is a
sleep; answers themselves are deterministic (see ``dataset``). The key ``invalid`` (or no
key) is answered with the vendor's 401.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from . import dataset

logger = logging.getLogger(__name__)

DEFAULT_PORT = 8100
ERROR_IDS = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found",
    429: "rate_limit_error",
    503: "service_unavailable",
}
DEFAULT_HIT_RATES = {"hunter": 0.55, "pdl": 0.6, "apollo": 0.45}


@dataclass(frozen=True)
class VendorConfig:
    latency_ms: float = 50.0
    jitter_ms: float = 0.0
    error_rate: float = 0.0
    hit_rate: float = 0.5


@dataclass(frozen=True)
class SimulatorConfig:
    seed: int = 42
    companies: int = 50
    people_per_company: int = 20
    retry_after: int = 1
    vendors: dict[str, VendorConfig] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SimulatorConfig:
        env = os.environ if environ is None else environ

        def num(name: str, default: float) -> float:
            value = env.get(name, "")
            return float(value) if value.strip() else default

        latency = num("SIMULATOR_LATENCY_MS", 50)
        jitter = num("SIMULATOR_LATENCY_JITTER_MS", 0)
        error_rate = num("SIMULATOR_ERROR_RATE", 0)
        vendors = {}
        for vendor in dataset.VENDORS:
            prefix = f"SIMULATOR_{vendor.upper()}_"
            vendors[vendor] = VendorConfig(
                latency_ms=num(prefix + "LATENCY_MS", latency),
                jitter_ms=num(prefix + "LATENCY_JITTER_MS", jitter),
                error_rate=num(prefix + "ERROR_RATE", error_rate),
                hit_rate=num(prefix + "HIT_RATE", DEFAULT_HIT_RATES[vendor]),
            )
        return cls(
            seed=int(num("SIMULATOR_SEED", 42)),
            companies=int(num("SIMULATOR_COMPANIES", 50)),
            people_per_company=int(num("SIMULATOR_PEOPLE_PER_COMPANY", 20)),
            retry_after=int(num("SIMULATOR_RETRY_AFTER_SECONDS", 1)),
            vendors=vendors,
        )

    def vendor(self, name: str) -> VendorConfig:
        return self.vendors.get(name) or VendorConfig(hit_rate=DEFAULT_HIT_RATES[name])


class SimulatorHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the adapters' pooled sessions reuse sockets
    # Headers and body go out in two writes; with Nagle on, the second waits for the
    # client's delayed ACK (~40 ms), nearly doubling a 50 ms simulated latency.
    disable_nagle_algorithm = True
    server: SimulatorServer

    # --- plumbing -----------------------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("simulator: " + format, *args)

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)

    def _params(self) -> dict[str, str]:
        query = parse_qs(urlsplit(self.path).query)
        params = {k: v[-1] for k, v in query.items()}
        try:
            length = max(0, int(self.headers.get("Content-Length") or 0))
        except ValueError:
            length = 0
        if length:
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            if isinstance(body, dict):
                params.update({k: str(v) for k, v in body.items() if v is not None})
        return params

    def _key(self, *names: str) -> str:
        for name in names:
            if self.headers.get(name):
                return self.headers[name]
        return ""

    def _behave(self, vendor: str) -> bool:
        """Latency and random errors; False when an error answer was already sent."""
        config = self.server.config.vendor(vendor)
        delay = config.latency_ms + (random.uniform(-1, 1) * config.jitter_ms)
        if delay > 0:
            time.sleep(delay / 1000)
        self.server.count(vendor)
        if config.error_rate and random.random() < config.error_rate:
            if random.random() < 0.5:
                self._vendor_error(
                    vendor,
                    429,
                    "rate limited",
                    {"Retry-After": str(self.server.config.retry_after)},
                )
            else:
                self._vendor_error(vendor, 503, "temporarily unavailable")
            return False
        return True

    def _vendor_error(
        self, vendor: str, status: int, message: str, headers: dict[str, str] | None = None
    ) -> None:
        error_id = ERROR_IDS.get(status, "error")
        if vendor == "hunter":
            body: dict[str, Any] = {
                "errors": [{"id": error_id, "code": status, "details": message}]
            }
        elif vendor == "pdl":
            body = {"status": status, "error": {"type": error_id, "message": message}}
        else:
            body = {"error": message}
        self._send(status, body, headers)

    def _person(self, params: dict[str, str], *, company_param: str) -> dataset.Person | None:
        first, last = params.get("first_name", ""), params.get("last_name", "")
        if not first or not last:
            return None
        org = dataset.org_of(
            domain=params.get("domain", ""),
            company=params.get(company_param, ""),
            linkedin_url=params.get("linkedin_url") or params.get("profile", ""),
        )
        if not org:
            return None
        return dataset.person_for(dataset.identity(first, last, org), self.server.config.seed)

    def _knowledge(self, vendor: str, person: dataset.Person | None) -> dataset.Knowledge | None:
        if person is None:
            return None
        config = self.server.config
        return dataset.knowledge(
            vendor, person, seed=config.seed, hit_rate=config.vendor(vendor).hit_rate
        )

    # --- routes -------------------------------------------------------------------------------

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/v2/email-finder":
            self._hunter()
        elif path == "/v5/person/enrich":
            self._pdl()
        elif path == "/_simulator/people":
            self._people()
        elif path in ("/healthz", "/"):
            self._send(200, {"status": "ok", "calls": self.server.calls()})
        else:
            self._send(404, {"error": "no such path"})

    def do_POST(self) -> None:
        if urlsplit(self.path).path == "/api/v1/people/match":
            self._apollo()
        else:
            self._send(404, {"error": "no such path"})

    def _hunter(self) -> None:
        params = self._params()
        key = self._key("X-API-KEY") or params.get("api_key", "")
        if key in ("", "invalid"):
            self._vendor_error("hunter", 401, "No valid API key was provided.")
            return
        if not (params.get("domain") or params.get("company")):
            self._vendor_error("hunter", 400, "You are missing the domain parameter")
            return
        if not self._behave("hunter"):
            return
        person = self._person(params, company_param="company")
        known = self._knowledge("hunter", person)
        meta = {"params": {k: params.get(k) for k in ("first_name", "last_name", "domain")}}
        if person is None or known is None:
            # Hunter answers 200 with a null email when it cannot find one.
            self._send(200, {"data": {"email": None, "score": None}, "meta": meta})
            return
        self._send(
            200,
            {
                "data": {
                    "first_name": person.first_name,
                    "last_name": person.last_name,
                    "email": person.email,
                    "score": known.score,
                    "domain": person.domain,
                    "accept_all": known.email_status == "accept_all",
                    "position": person.title,
                    "twitter": None,
                    "linkedin_url": person.linkedin_url,
                    # Hunter shows phones as found on the web: international, with spaces.
                    "phone_number": _spaced(person.phone) if known.has_phone else None,
                    "company": person.company,
                    "sources": [],
                    "verification": {"date": "2026-01-01", "status": known.email_status},
                },
                "meta": meta,
            },
        )

    def _pdl(self) -> None:
        params = self._params()
        if (self._key("X-Api-Key") or params.get("api_key", "")) in ("", "invalid"):
            self._vendor_error("pdl", 401, "Invalid API key")
            return
        if not (params.get("company") or params.get("profile")):
            self._vendor_error("pdl", 400, "Not enough data points to find a match")
            return
        if not self._behave("pdl"):
            return
        person = self._person(params, company_param="company")
        known = self._knowledge("pdl", person)
        if person is None or known is None:
            self._vendor_error("pdl", 404, "No records were found matching your request")
            return
        data = {
            "id": _person_id(person),
            "full_name": f"{person.first_name} {person.last_name}".lower(),
            "first_name": person.first_name.lower(),
            "last_name": person.last_name.lower(),
            "linkedin_url": person.linkedin_url.removeprefix("https://www."),
            "job_title": person.title.lower(),
            "job_company_name": person.company.lower(),
            "job_company_website": person.domain,
            # PDL does not verify, so it also returns the addresses Hunter would call invalid.
            "work_email": person.email,
            "mobile_phone": person.phone if known.has_phone else None,
            "phone_numbers": [person.phone] if known.has_phone else [],
            "personal_emails": [person.personal_email] if known.has_personal_email else [],
        }
        required = params.get("required", "")
        if required and not data.get(required):
            self._vendor_error("pdl", 404, "No records were found matching your request")
            return
        likelihood = max(1, min(10, known.score // 10))
        self._send(200, {"status": 200, "likelihood": likelihood, "data": data})

    def _apollo(self) -> None:
        params = self._params()
        if self._key("x-api-key", "X-Api-Key") in ("", "invalid"):
            self._send(401, {"error": "Invalid access credentials."})
            return
        if not self._behave("apollo"):
            return
        person = self._person(params, company_param="organization_name")
        known = self._knowledge("apollo", person)
        if person is None or known is None:
            self._send(200, {"person": None})
            return
        status = {"valid": "verified", "accept_all": "guessed", "unknown": "guessed"}.get(
            known.email_status, "unavailable"
        )
        reveal = params.get("reveal_personal_emails", "").lower() == "true"
        self._send(
            200,
            {
                "person": {
                    "id": _person_id(person),
                    "first_name": person.first_name,
                    "last_name": person.last_name,
                    "name": f"{person.first_name} {person.last_name}",
                    "linkedin_url": person.linkedin_url,
                    "title": person.title,
                    "email_status": status,
                    "email": person.email if status != "unavailable" else None,
                    "personal_emails": (
                        [person.personal_email] if reveal and known.has_personal_email else []
                    ),
                    "organization": {"name": person.company, "primary_domain": person.domain},
                }
            },
        )

    def _people(self) -> None:
        params = self._params()
        config = self.server.config
        everyone = dataset.people(config.seed, config.companies, config.people_per_company)
        try:
            offset = max(0, int(params.get("offset") or 0))
            limit = max(0, min(int(params.get("limit") or 100), 10000))
        except ValueError:
            self._send(400, {"error": "offset and limit must be integers"})
            return
        page = everyone[offset : offset + limit]
        self._send(
            200,
            {
                "total": len(everyone),
                "people": [
                    {
                        "first_name": p.first_name,
                        "last_name": p.last_name,
                        "company_name": p.company,
                        "domain": p.domain,
                        "linkedin_url": p.linkedin_url,
                    }
                    for p in page
                ],
            },
        )


def _person_id(person: dataset.Person) -> str:
    return f"sim{int(dataset.u(person.key, 'id') * 10**12):012d}"


def _spaced(e164: str) -> str:
    import phonenumbers

    return phonenumbers.format_number(
        phonenumbers.parse(e164), phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )


class SimulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    # Many pooled connections from many worker threads may arrive at once.
    request_queue_size = 512

    def __init__(self, address: tuple[str, int], config: SimulatorConfig) -> None:
        super().__init__(address, SimulatorHandler)
        self.config = config
        self._calls: dict[str, int] = {}
        self._lock = threading.Lock()

    def count(self, vendor: str) -> None:
        with self._lock:
            self._calls[vendor] = self._calls.get(vendor, 0) + 1

    def calls(self) -> dict[str, int]:
        with self._lock:
            return dict(self._calls)


def serve(host: str, port: int, config: SimulatorConfig | None = None) -> SimulatorServer:
    """Create (not start) a simulator server; ``serve_forever`` it or run it in a thread."""
    return SimulatorServer((host, port), config or SimulatorConfig.from_env())
