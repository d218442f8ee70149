"""Shares of a py-spy GIL profile (``--format raw``: one ``frame;frame;… count`` per line) by
the sync path's steps, each counted once per sample whose stack passes through it.

Usage: python bench/gil_shares.py PROFILE.txt   (bench/sync_profile.sh calls it)
"""

from __future__ import annotations

import sys
from pathlib import Path

# Step → a frame that marks it (the function's name and file, as py-spy prints them).
STEPS = {
    "finish transaction": "_contacts_finish (apps/enrichment/services/finishing.py",
    "  credits settle": "credits_settle (apps/accounts/services.py",
    "  events emit": "events_emit (apps/webhooks/services/events.py",
    "claim (and load)": "contacts_claim_rows (apps/enrichment/services/running.py",
    "claim (before c105cfd)": "contacts_claim (apps/enrichment/services/running.py",
    "load (line-up, reuse; before c105cfd: contacts too)": "_load.<locals>.load (apps/enrichment",
    "line-up": "Lineup.load (apps/providers/registry.py",
    "finisher's credit holds": "Runner._hold (apps/enrichment/services/running.py",
    "waterfall HTTP calls": "waterfall_run (apps/enrichment/waterfall.py",
    "Celery consumer loop": "Hub.create_loop (kombu/asynchronous/hub.py",
    "sync view (web)": "EnrichSyncView.post (apps/enrichment/views.py",
    "  insert and publish (web)": "contact_enqueue (apps/enrichment/services/intake.py",
    "  wait and its reads (web)": "contacts_wait (apps/enrichment/services/waiting.py",
}


def main(path: str) -> None:
    total = 0
    counts = dict.fromkeys(STEPS, 0)
    for line in Path(path).read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        total += int(n)
        for step, marker in STEPS.items():
            if marker in stack:
                counts[step] += int(n)
    print(f"{path}: {total} GIL samples")
    for step, count in counts.items():
        if count:
            print(f"  {count / total * 100:5.1f} %  {step}")


if __name__ == "__main__":
    main(sys.argv[1])
