"""Rows of every imports table, as the product writes them (admin tests, the browser check)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from apps.imports.models import Export, Import, ImportRowError


def import_rows(*, account, key, bulk=None) -> Import:
    """A finished import with long real-world values, a row error, and an export of it."""
    now = timezone.now()
    job = Import.objects.create(
        account=account,
        api_key=key,
        name="Q3 trade-show leads, Northwind EMEA field marketing",
        file_name="2026-09 Hannover Messe badge scans (deduplicated, final v3).csv",
        file_size=1_834_221,
        encoding="utf-8-sig",
        delimiter=";",
        columns=["First Name", "Last Name", "Company", "Website", "LinkedIn", "Badge id"],
        mapping={
            "First Name": "first_name",
            "Last Name": "last_name",
            "Company": "company_name",
            "Website": "domain",
            "LinkedIn": "linkedin_url",
        },
        enrichment_type=["email", "phone"],
        webhook_url="https://crm.northwind-traders.example/webhooks/sluice/imports",
        bulk=bulk,
        status=Import.COMPLETED,
        stage=Import.DONE,
        total_rows=12_000,
        valid_rows=11_640,
        imported_rows=11_640,
        error_count=360,
        next_row=12_001,
        run_count=1,
        completed_at=now,
    )
    ImportRowError.objects.create(
        import_job=job,
        row=1_207,
        field="linkedin_url",
        column="LinkedIn",
        message="Must be an http(s) LinkedIn profile URL such as https://www.linkedin.com/in/name.",
    )
    Export.objects.create(
        account=account,
        api_key=key,
        source="import",
        source_id=job.pk,
        status=Export.COMPLETED,
        row_count=11_640,
        file_key=f"exports/{account.pk}/{job.pk}.csv",
        completed_at=now,
        expires_at=now + timedelta(days=7),
    )
    return job
