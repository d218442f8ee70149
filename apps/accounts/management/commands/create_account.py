"""``manage.py create_account``: make a tenant and print its credentials as one JSON line.

The last stdout line is a fixed contract for scripts (SPEC §2):
``{"account_id": "...", "api_key": "sk_test_...", "webhook_secret": "whsec_..."}``
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.accounts.services import account_create
from apps.core.errors import SluiceError

EXAMPLE = """example:
  python manage.py create_account --name "Acme" --plan growth --credits 500 --mode test
  (add --consent when the account consented to personal-email enrichment)"""


class Command(BaseCommand):
    help = "Create an account with one API key and print its credentials as JSON."

    def create_parser(self, prog_name: str, subcommand: str, **kwargs):  # type: ignore[override]
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.epilog = EXAMPLE

        class KeepEpilogLines(parser.formatter_class):  # type: ignore[misc,name-defined]
            def _fill_text(self, text: str, width: int, indent: str) -> str:
                return "".join(indent + line for line in text.splitlines(keepends=True))

        parser.formatter_class = KeepEpilogLines
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument("--plan", required=True, help="free, starter, growth or pro")
        parser.add_argument("--credits", type=int, default=0)
        parser.add_argument("--mode", choices=["live", "test"], default="test")
        parser.add_argument(
            "--consent",
            action="store_true",
            help="the account consented to personal-email enrichment",
        )

    def handle(self, *args, **options) -> None:
        try:
            created = account_create(
                name=options["name"],
                plan_code=options["plan"],
                credits=options["credits"],
                mode=options["mode"],
                personal_email_consent=options["consent"],
            )
        except SluiceError as exc:
            raise CommandError(f"{exc.message}: {exc.details}")
        self.stdout.write(
            json.dumps(
                {
                    "account_id": str(created.account.id),
                    "api_key": created.key.raw_key,
                    "webhook_secret": created.account.callback_secret,
                }
            )
        )
        # For a person at a terminal (stdout's one JSON line stays the scripts' contract).
        self.stderr.write(
            f"export SLUICE_API_KEY={created.key.raw_key}", style_func=lambda text: text
        )
