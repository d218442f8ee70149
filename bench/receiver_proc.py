"""The benchmarks' fast receiver (tests/support/receiver.py, every answer a 204) in a process
of its own, so that it has its own GIL and its CPU is measured apart from the benchmark's.

Run by bench/webhooks.py. Prints its port, then answers one command per stdin line with one
JSON line on stdout:

* ``count`` -> number of requests recorded since the last ``take``;
* ``take`` -> every recorded request since the last ``take`` (then forgotten): per request
  ``at`` (the receiver's ``time.time()`` once the body is read), ``path``, ``type``,
  ``delivery`` (``X-Sluice-Delivery``), ``msg_id`` (``webhook-id``), ``bytes`` and the
  body's ``data.finished_at`` when there is one; plus ``samples``: the full headers and body
  of the first three, for checking signatures;
* ``quit``.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.receiver import Answer, Receiver


def _record(r) -> dict:
    finished_at = None
    if r.body[:1] == b"{":
        try:
            data = json.loads(r.body).get("data")
            if isinstance(data, dict):
                finished_at = data.get("finished_at")
        except ValueError:
            pass
    return {
        "at": r.at,
        "path": r.path,
        "type": r.event_type,
        "delivery": r.headers.get("x-sluice-delivery"),
        "msg_id": r.headers.get("webhook-id"),
        "bytes": len(r.body),
        "finished_at": finished_at,
    }


def main() -> None:
    receiver = Receiver(Answer(status=204, body=b"")).start()
    print(receiver.port, flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "count":
            # Cheap, as it is polled while requests arrive: the bench takes the warm-up
            # requests before it starts counting.
            out: object = len(receiver.requests)
        elif command == "take":
            taken = [r for r in receiver.take() if not r.path.startswith("/warm")]
            out = {
                "records": [_record(r) for r in taken],
                "samples": [
                    {
                        "headers": r.headers,
                        "body": base64.b64encode(r.body).decode(),
                    }
                    for r in taken[:3]
                ],
            }
        elif command == "quit":
            break
        else:
            out = {"error": f"unknown command {command!r}"}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()
    receiver.stop()


if __name__ == "__main__":
    main()
