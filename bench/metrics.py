"""The cost of one /metrics scrape on a large database: run by bench/metrics.sh.

Prometheus scrapes every 15 s by default, from every replica of the scraper; a scrape must
cost a small fraction of that. This seeds N contacts (default 100,000) in one account, as a
busy day leaves them: 98 % finished with the four result statuses, 2 % pending (half of those
with a lapsed lease), 5 % run twice, created over the last 48 h (so the 24 h windows hold
about half), and two provider attempts per contact. Then it times the whole scrape through
Django's WSGI stack (token check, every app's collector, the Redis queue depths, rendering):
a warm-up, then ``rounds`` scrapes, and prints the median, the spread, the number of queries
and the slowest query's share.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
N = int(ARGS[0]) if ARGS else 100_000
ROUNDS = int(ARGS[1]) if len(ARGS) > 1 else 15

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from apps.accounts.models import Account, Plan  # noqa: E402
from apps.enrichment.models import Contact, ProviderAttempt  # noqa: E402

# Columns of the seeded rows that differ from the template contact; g is 1..N.
CONTACT_COLUMNS = {
    "id": "gen_random_uuid()",
    "status": "CASE WHEN g % 50 = 0 THEN 'pending' ELSE 'finished' END",
    "result_status": (
        "CASE WHEN g % 50 = 0 THEN NULL"
        " ELSE (ARRAY['VERIFIED', 'NOT_FOUND', 'NO_CREDITS', 'FAILED'])[1 + g % 4] END"
    ),
    "created_at": "now() - (g % 172800) * interval '1 second'",
    "updated_at": "now() - (g % 172800) * interval '1 second'",
    "finished_at": (
        "CASE WHEN g % 50 = 0 THEN NULL"
        " ELSE now() - (g % 172800) * interval '1 second' + interval '3 seconds' END"
    ),
    "lease_expires_at": "CASE WHEN g % 100 = 0 THEN now() - interval '1 minute' END",
    "run_count": "1 + (g % 20 = 0)::int",
    "first_name": "'First' || g",
    "last_name": "'Last' || g",
}


def insert_row(model: type, **values: object) -> object:
    """Insert one row with the columns the database has now (another change may have added a
    model field whose migration is not written yet); the model's defaults fill the rest."""
    obj = model(**values)
    table = model._meta.db_table
    with connection.cursor() as cursor:
        present = {c.name for c in connection.introspection.get_table_description(cursor, table)}
        fields = [f for f in model._meta.concrete_fields if f.column in present]
        row = [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]
        names = ", ".join(f'"{f.column}"' for f in fields)
        marks = ", ".join(["%s"] * len(fields))
        cursor.execute(f'INSERT INTO "{table}" ({names}) VALUES ({marks})', row)
    return obj.pk


def seed(n: int) -> None:
    plan = Plan.objects.get(code="growth")
    account = insert_row(Account, name="metrics-bench", plan_id=plan.pk, credits=0)
    template = insert_row(
        Contact,
        account_id=account,
        first_name="T",
        last_name="T",
        domain="acme.com",
        sandbox=True,
        enrichment_type=["email"],
    )
    table = Contact._meta.db_table
    with connection.cursor() as cursor:
        columns = [c.name for c in connection.introspection.get_table_description(cursor, table)]
    # "%" is the modulo operator here, not a placeholder: doubled for the driver.
    select = [CONTACT_COLUMNS.get(c, f't."{c}"').replace("%", "%%") for c in columns]
    attempts = ProviderAttempt._meta.db_table
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            f'INSERT INTO "{table}" ({", ".join(f"{chr(34)}{c}{chr(34)}" for c in columns)})'
            f' SELECT {", ".join(select)} FROM "{table}" t, generate_series(1, %s) g'
            " WHERE t.id = %s",
            [n, template],
        )
        cursor.execute(f'DELETE FROM "{table}" WHERE id = %s', [template])
        cursor.execute(
            f'INSERT INTO "{attempts}"'
            " (contact_id, provider, kind, outcome, duration_ms, position, created_at)"
            " SELECT c.id, (ARRAY['hunter', 'apollo', 'pdl'])[1 + k + (c.run_count % 2)],"
            " 'email', CASE WHEN k = 0 THEN 'miss' ELSE 'hit' END,"
            " (50 + random() * 400)::int, k, c.created_at"
            f' FROM "{table}" c, generate_series(0, 1) k'
        )
        cursor.execute(f'ANALYZE "{table}"')
        cursor.execute(f'ANALYZE "{attempts}"')
    print(
        f"seeded {Contact.objects.count():,} contacts and {ProviderAttempt.objects.count():,}"
        f" provider attempts in {time.perf_counter() - started:.1f} s"
    )


def scrape(client: Client) -> float:
    started = time.perf_counter()
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {settings.METRICS_TOKEN}")
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code == 200, response.status_code
    assert b"sluice_contacts_pending" in response.content
    return elapsed


def main() -> None:
    seed(N)
    client = Client()
    for _ in range(3):  # warm-up: imports, connections, PostgreSQL's buffers
        scrape(client)
    times = [scrape(client) for _ in range(ROUNDS)]
    with CaptureQueriesContext(connection) as queries:
        scrape(client)
    slowest = max(queries.captured_queries, key=lambda q: float(q["time"]))
    in_sql = sum(float(q["time"]) for q in queries.captured_queries) * 1000
    median = statistics.median(times)
    print(
        f"/metrics on {N:,} contacts: median {median:.1f} ms per scrape over {ROUNDS} rounds"
        f" (min {min(times):.1f}, max {max(times):.1f});"
        f" {len(queries.captured_queries)} queries taking {in_sql:.1f} ms in all, the slowest"
        f" {float(slowest['time']) * 1000:.1f} ms:\n  {slowest['sql'][:300]}"
    )
    # Wall time, PostgreSQL's share included: what a scrape holds a gunicorn thread for.
    print(f"at one scrape every 15 s: {median / 150:.2f} % of the interval")


if __name__ == "__main__":
    main()
