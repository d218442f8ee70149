"""What the intake benchmarks send, in one place so that their figures describe one request:
the single-enrich body, and the plan of the benchmark account (no rate limits: the
limiter's own cost is bench/ratelimit.sh's subject)."""

from __future__ import annotations

ENRICH_BODY = {
    "first_name": "Sarah",
    "last_name": "Chen",
    "company_name": "Stripe",
    "domain": "stripe.com",
    "enrichment_type": ["email"],
    "custom": {"crm": "1"},
}

BENCH_PLAN = {
    "name": "Bench",
    "api_access": True,
    "daily_requests": None,
    "per_minute": None,
    "max_active_keys": None,
    "bulk_max": 100,
}
