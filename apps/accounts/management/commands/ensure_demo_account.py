"""``manage.py ensure_demo_account``: the demo tenant for the embedded default (scripts/run).

Creates it once (pro plan, 1,000 credits, a sandbox key and a live key) and keeps its raw
keys in ``var/demo.json`` (mode 0600) so later runs can print them again. Development only.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.accounts.models import Account, ApiKey
from apps.accounts.selectors import api_key_by_raw
from apps.accounts.services import account_create, api_key_create


class Command(BaseCommand):
    help = "Create (once) the demo account and print its keys as JSON."

    def handle(self, *args, **options) -> None:
        if settings.PRODUCTION:
            raise CommandError("the demo account is for development only")
        path = settings.VAR_DIR / "demo.json"
        if path.exists():
            demo = json.loads(path.read_text())
            if all(
                (key := api_key_by_raw(demo[name])) is not None and key.active
                for name in ("sandbox_key", "live_key")
            ):
                self.stdout.write(json.dumps(demo))
                return
        created = account_create(
            name="Demo",
            plan_code="pro",
            credits=1000,
            mode=ApiKey.MODE_TEST,
            personal_email_consent=True,
            default_phone_country_codes=["US", "GB", "FR", "DE"],
        )
        account: Account = created.account
        live = api_key_create(account=account, mode=ApiKey.MODE_LIVE, name="demo live")
        demo = {
            "account_id": str(account.id),
            "sandbox_key": created.key.raw_key,
            "live_key": live.raw_key,
            "webhook_secret": account.callback_secret,
        }
        path.write_text(json.dumps(demo))
        path.chmod(0o600)
        self.stdout.write(json.dumps(demo))
