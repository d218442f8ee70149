"""What waits on the real Redis broker's queues, for tests that count published messages."""

from __future__ import annotations

import base64
import json


def queue_length(redis_client, queue: str = "enrichment") -> int:
    return redis_client.llen(queue)


def queued_ids(redis_client, queue: str) -> list[list[str]]:
    """The ids (first argument) of each message waiting on ``queue``, oldest first."""
    messages = []
    for raw in reversed(redis_client.lrange(queue, 0, -1)):
        args, _kwargs, _embed = json.loads(base64.b64decode(json.loads(raw)["body"]))
        messages.append(args[0])
    return messages


def queued_contact_ids(redis_client) -> list[list[str]]:
    """The contact ids of each message waiting on the enrichment queue, oldest first."""
    return queued_ids(redis_client, "enrichment")


def queued_delivery_ids(redis_client) -> list[str]:
    """Every delivery id waiting on the webhooks queue, in whichever message."""
    return sorted(i for ids in queued_ids(redis_client, "webhooks") for i in ids)
