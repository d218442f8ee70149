"""The ops dashboard: the last 24 hours of enrichments, providers, webhooks and queues, and
the work whose worker is gone (recovery)."""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from apps.enrichment.models import Contact

from . import charts, selectors

WINDOW = timedelta(hours=24)

OUTCOME_SERIES = [
    charts.Series(Contact.VERIFIED, "verified", "#2e9e5b"),
    charts.Series(Contact.NOT_FOUND, "not found", "#9aa5b1"),
    charts.Series(Contact.NO_CREDITS, "no credits", "#e0a526"),
    charts.Series(Contact.FAILED, "failed", "#d64545"),
    charts.Series(selectors.PENDING, "pending", "#5b8def"),
]


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f} %"


def _recovery_links(now: datetime) -> dict[str, str]:
    """Changelists filtered to each recovery figure (the Contact admin's lease and recovery
    filters; for deliveries, the claims lapsed as of this page load)."""
    contacts = reverse("admin:enrichment_contact_changelist")
    deliveries = reverse("admin:webhooks_delivery_changelist")
    lapsed = urlencode({"status__exact": "pending", "claimed_until__lt": now.isoformat()})
    return {
        "contacts_orphaned": f"{contacts}?lease=lapsed",
        "contacts_rerun": f"{contacts}?recovery=rerun_24h",
        "contacts_stuck": f"{contacts}?recovery=stuck",
        "deliveries_orphaned": f"{deliveries}?{lapsed}",
    }


def dashboard(request: HttpRequest) -> HttpResponse:
    """Every figure comes from an aggregate query, so the page costs the same at any volume."""
    # Staff status alone opens the admin; the figures (account names, endpoint URLs) are for
    # those who may look at enrichments: superusers, the support group, ops groups.
    if not request.user.has_perm("enrichment.view_contact"):
        raise PermissionDenied
    now = timezone.now()
    since = now - WINDOW
    # 24 clock-hour bars, the current (partial) hour last.
    buckets = selectors.contact_outcomes_by_hour(now=now)
    totals = selectors.outcome_totals(buckets)
    providers = selectors.provider_stats(since=since)
    webhooks = selectors.webhook_stats(since=since)
    disabled_count, disabled = selectors.endpoints_disabled()
    queues = selectors.queue_depths()
    recovery = selectors.recovery(now=now, since=since)

    outcome_chart = charts.stacked_bars(
        title="Enrichments by outcome per hour",
        labels=[b.hour.strftime("%H:00") for b in buckets],
        values=[b.counts for b in buckets],
        series=OUTCOME_SERIES,
    )
    hit_rate_chart = charts.horizontal_bars(
        title="Hit rate per provider",
        bars=[
            charts.Bar(p.provider, (p.hit_rate or 0) * 100, _percent(p.hit_rate)) for p in providers
        ],
        max_value=100,
        color="#2e9e5b",
    )
    latency_chart = charts.horizontal_bars(
        title="p95 latency per provider",
        bars=[charts.Bar(p.provider, p.p95_ms or 0, f"{p.p95_ms or 0:.0f} ms") for p in providers],
        color="#5b8def",
    )
    webhook_chart = (
        charts.ratio_bar(
            title="Webhook delivery attempts",
            parts=[
                charts.Bar("succeeded", webhooks.succeeded, color="#2e9e5b"),
                charts.Bar("failed", webhooks.failed, color="#d64545"),
            ],
        )
        if webhooks is not None
        else None
    )
    queue_chart = charts.horizontal_bars(
        title="Queue depth",
        bars=[
            charts.Bar(q, n or 0, "?" if n is None else str(n)) for q, n in queues.depths.items()
        ],
        color="#e0a526",
    )
    contacts_total = sum(totals.values())
    finished = contacts_total - totals[selectors.PENDING]
    context = {
        **admin.site.each_context(request),
        "title": "Dashboard: last 24 hours",
        "since": since,
        "now": now,
        "contacts_total": contacts_total,
        "verified_rate": _percent(totals[Contact.VERIFIED] / finished if finished else None),
        "totals": [(s.label, s.color, totals[s.key]) for s in OUTCOME_SERIES],
        "outcome_chart": outcome_chart,
        "providers": [
            {
                "stats": p,
                "hit_rate": _percent(p.hit_rate),
                "error_rate": _percent(p.error_rate),
                "p95": "-" if p.p95_ms is None else f"{p.p95_ms:.0f} ms",
            }
            for p in providers
        ],
        "hit_rate_chart": hit_rate_chart,
        "latency_chart": latency_chart,
        "webhooks": webhooks,
        "webhook_success_rate": _percent(webhooks.success_rate) if webhooks else "-",
        "webhook_chart": webhook_chart,
        "disabled_count": disabled_count,
        "disabled": disabled,
        "queues": queues,
        "queue_chart": queue_chart,
        "recovery": recovery,
        "recovery_links": _recovery_links(now),
        "reap_interval": settings.ENRICHMENT_REAP_INTERVAL_SECONDS,
        "max_runs": settings.ENRICHMENT_MAX_RUNS,
        "stuck_after": settings.ENRICHMENT_STUCK_AFTER_SECONDS,
    }
    return TemplateResponse(request, "admin/ops/dashboard.html", context)
