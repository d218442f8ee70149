"""The ``sluice`` command (docs/client.md)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from . import enrich_csv
from .client import Sluice
from .errors import APIError, ConnectionError, SluiceError
from .listen import Forwarded, Listener

try:  # The `cli` extra: a progress bar and colours; plain lines without it.
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
except ImportError:  # pragma: no cover - exercised only without rich installed
    Console = None  # type: ignore[assignment,misc]


def _out(args: argparse.Namespace, value: Any, pretty: str) -> None:
    if args.json:
        print(json.dumps(value), flush=True)
    elif Console is not None:
        Console(highlight=False).print(pretty)
    else:
        print(pretty, flush=True)


def _err(message: str) -> None:
    print(f"sluice: {message}", file=sys.stderr, flush=True)


def _client(args: argparse.Namespace) -> Sluice:
    return Sluice(args.api_key, base_url=args.base_url)


# --- commands ------------------------------------------------------------------------------


def cmd_credits(args: argparse.Namespace) -> int:
    credits = _client(args).credits()
    limit = credits["daily_limit"]
    _out(
        args,
        credits,
        f"[bold]{credits['credits']}[/bold] credits · plan {credits['plan']} · "
        f"{credits['daily_requests_used']}/{'∞' if limit is None else limit} requests today",
    )
    return 0


def cmd_contacts_get(args: argparse.Namespace) -> int:
    contact = _client(args).get_contact(args.id)
    result = contact.get("result") or {}
    lines = [
        f"[bold]{contact['first_name']} {contact['last_name']}[/bold]  {contact['enrichment_id']}",
        f"status   {contact['status']}"
        + (f" · {result.get('status')}" if result else "")
        + (" · sandbox" if contact.get("sandbox") else ""),
    ]
    for label, value in (
        ("email", result.get("email") and f"{result['email']} ({result.get('email_status')})"),
        ("phone", ", ".join(p["number"] for p in result.get("phones") or []) or None),
        ("personal", result.get("personal_email")),
        ("title", result.get("job_title")),
        ("credits", contact.get("credits_charged")),
        ("custom", json.dumps(contact["custom"]) if contact.get("custom") else None),
    ):
        if value not in (None, ""):
            lines.append(f"{label:<8} {value}")
    for attempt in contact.get("attempts") or []:
        error = f" — {attempt['error']}" if attempt.get("error") else ""
        lines.append(
            f"  {attempt['kind']:<14} {attempt['provider']:<10} {attempt['outcome']}{error}"
        )
    _out(args, contact, "\n".join(lines))
    return 0


def _moment(timestamp: str) -> datetime:
    """An RFC 3339 timestamp as an aware datetime (strings with and without a fraction do
    not sort as text)."""
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))


def cmd_events_tail(args: argparse.Namespace) -> int:
    client = _client(args)
    since = args.since or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time()))
    # ``since`` is inclusive: the ids already printed at the newest moment seen (only those
    # can come back) are remembered, nothing older.
    seen: dict[str, str] = {}
    printed = 0
    while True:
        fresh = [e for e in client.iter_events(type=args.type, since=since) if e["id"] not in seen]
        for event in sorted(fresh, key=lambda e: (e["created_at"], e["id"])):
            seen[event["id"]] = event["created_at"]
            if _moment(event["created_at"]) > _moment(since):
                since = event["created_at"]
            data = event.get("data") or {}
            what = data.get("enrichment_id") or data.get("bulk_id") or data.get("id") or ""
            status = (data.get("result") or {}).get("status") or data.get("status") or ""
            _out(
                args,
                event,
                f"{event['created_at']}  [bold]{event['type']:<18}[/bold] {event['id']}  "
                f"{what} {status}",
            )
            printed += 1
            if args.count and printed >= args.count:
                return 0
        seen = {k: at for k, at in seen.items() if _moment(at) >= _moment(since)}
        time.sleep(args.interval)


def cmd_listen(args: argparse.Namespace) -> int:
    client = _client(args)

    def report(f: Forwarded) -> None:
        mark = "signature ok" if f.verified else "[red]signature FAILED[/red]"
        sent = f"-> {f.status}" if f.status is not None else f"-> [red]{f.error}[/red]"
        _out(
            args,
            f.as_dict(),
            f"{f.as_dict()['at']}  [bold]{f.event_type:<18}[/bold] {f.event_id}  {sent}  {mark}",
        )

    listener = Listener(
        client,
        forward_to=args.forward_to,
        events=args.events.split(",") if args.events else None,
        host=args.host,
        port=args.port,
        public_url=args.public_url,
        on_delivery=report,
        endpoint_id=args.endpoint,
        secret=args.secret or os.environ.get("SLUICE_WEBHOOK_SECRET"),
    )
    stop = threading.Event()
    # SIGTERM too: the endpoint is removed however the command is stopped (but SIGKILL).
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    endpoint = listener.start()
    try:
        _out(
            args,
            {
                "ready": True,
                "endpoint_id": endpoint["id"],
                "url": listener.url,
                "forward_to": args.forward_to,
                "events": endpoint["events"],
                "secret": endpoint["secret"],
            },
            f"Ready: endpoint {endpoint['id']} at {listener.url} → {args.forward_to}\n"
            f"Signing secret {endpoint['secret']} · events {', '.join(endpoint['events'])}\n"
            "Ctrl-C stops"
            + (" (the endpoint stays)." if args.endpoint else " and removes the endpoint."),
        )
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        listener.stop()
        if not args.json and not args.endpoint:
            _err(f"endpoint {endpoint['id']} removed")
    return 0


def cmd_enrich(args: argparse.Namespace) -> int:
    client = _client(args)
    types = [t.strip() for t in args.type.split(",") if t.strip()]
    output = Path(args.output)
    if enrich_csv.state_path(output).exists() and not args.json:
        _err(f"resuming the job in {enrich_csv.state_path(output)}")

    def run(on_progress: Any) -> dict[str, Any]:
        return enrich_csv.run(
            client,
            input_path=Path(args.input),
            output_path=output,
            enrichment_type=types,
            list_name=args.list,
            via=args.via,
            on_progress=on_progress,
        )

    try:
        if args.json or Console is None:
            last = [0.0]

            def plain(p: enrich_csv.Progress) -> None:
                if args.json or time.monotonic() - last[0] < 2:
                    return
                last[0] = time.monotonic()
                _err(
                    f"{p.finished}/{p.total} enriched, {p.found_rate:.0%} found, "
                    f"{p.credits_used} credits"
                )

            summary = run(plain)
        else:
            columns = (
                TextColumn("[bold]enriching"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[found]} found · {task.fields[credits]} credits"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
            )
            with Progress(*columns, console=Console(stderr=True)) as bar:
                task = bar.add_task("enrich", total=None, found="0%", credits=0)

                def fancy(p: enrich_csv.Progress) -> None:
                    bar.update(
                        task,
                        total=p.total or None,  # None until the server has counted the rows
                        completed=p.finished,
                        found=f"{p.found_rate:.0%}",
                        credits=p.credits_used,
                    )

                summary = run(fancy)
    except KeyboardInterrupt:
        _err(
            "interrupted; run the same command again to resume "
            f"(state in {enrich_csv.state_path(output)}; nothing is sent twice)"
        )
        return 130
    except ConnectionError as exc:  # the retries are spent: the server is away
        _err(
            f"{exc}\nrun the same command again to resume "
            f"(state in {enrich_csv.state_path(output)}; nothing is sent twice)"
        )
        return 1
    if not args.json:
        for error in summary["errors"]:
            _err(f"skipped row {error['row']} ({error['column'] or 'row'}): {error['message']}")
        if summary["skipped"] > len(summary["errors"]):
            _err(
                f"… {summary['skipped']} rows skipped in all: "
                f"GET /api/v1/imports/{summary['import_id']}/errors"
            )
    _out(
        args,
        summary,
        f"{summary['rows']} rows → {summary['output']}: {summary['verified']} found "
        f"({summary['found_rate']:.0%}), {summary['credits_used']} credits"
        + (f", {summary['skipped']} rows skipped" if summary["skipped"] else ""),
    )
    return 0


# --- parser ----------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--api-key", help="default: $SLUICE_API_KEY")
    common.add_argument("--base-url", help="default: $SLUICE_BASE_URL, else http://127.0.0.1:8000")
    common.add_argument("--json", action="store_true", help="machine-readable output")

    top = argparse.ArgumentParser(prog="sluice", description="Sluice from the command line.")
    sub = top.add_subparsers(dest="command", required=True)

    p = sub.add_parser("enrich", parents=[common], help="enrich a CSV into another CSV")
    p.add_argument(
        "input",
        help="CSV with first and last names and a company, website or LinkedIn column "
        "(usual spellings; --via bulks: first_name,last_name,company_name/domain/linkedin_url)",
    )
    p.add_argument("-o", "--output", required=True, help="the enriched CSV to write")
    p.add_argument("--type", default="email", help="comma-separated: email,phone,personal_email")
    p.add_argument("--list", help="put every contact in the list of this name (created if none)")
    p.add_argument(
        "--via",
        choices=("auto", "imports", "bulks"),
        default="auto",
        help="upload the file as an import (default), or send its rows as bulks "
        "(auto: bulks when the server has no imports)",
    )
    p.set_defaults(func=cmd_enrich)

    p = sub.add_parser("listen", parents=[common], help="forward webhook deliveries to a local URL")
    p.add_argument("--forward-to", required=True, help="e.g. http://localhost:3000/hooks")
    p.add_argument("--events", help="comma-separated event types (default: all)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=0, help="port to listen on (default: any free)")
    p.add_argument("--public-url", help="the URL Sluice should call, if not http://HOST:PORT/")
    p.add_argument("--endpoint", help="use this existing endpoint (kept on exit) instead")
    p.add_argument("--secret", help="its whsec_ secret (default: $SLUICE_WEBHOOK_SECRET)")
    p.set_defaults(func=cmd_listen)

    p = sub.add_parser("credits", parents=[common], help="balance and today's usage")
    p.set_defaults(func=cmd_credits)

    contacts = sub.add_parser("contacts", help="contacts").add_subparsers(
        dest="action", required=True
    )
    p = contacts.add_parser("get", parents=[common], help="one enrichment")
    p.add_argument("id")
    p.set_defaults(func=cmd_contacts_get)

    events = sub.add_parser("events", help="events").add_subparsers(dest="action", required=True)
    p = events.add_parser("tail", parents=[common], help="poll GET /events and print new ones")
    p.add_argument("--type", help="e.g. contact.verified")
    p.add_argument("--since", help="RFC 3339 (default: now)")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between polls")
    p.add_argument("--count", type=int, default=0, help="exit after this many events")
    p.set_defaults(func=cmd_events_tail)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except APIError as exc:
        if args.json:
            print(
                json.dumps(
                    {
                        "error": exc.message,
                        "status": exc.status,
                        "code": exc.code,
                        "details": exc.details,
                        "request_id": exc.request_id,
                    }
                ),
                flush=True,
            )
        else:
            _err(str(exc))
        return 1
    except SluiceError as exc:
        _err(str(exc))
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
