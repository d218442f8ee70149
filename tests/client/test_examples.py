"""examples/receiver.py receives a real delivery (real worker) and refuses a forged one."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests

from tests.support.simulator import free_port
from tests.support.worker import ROOT, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def test_the_sample_receiver_verifies_and_prints_a_real_delivery(account_key, worker, tmp_path):
    api = account_key[0]
    port = free_port()
    url = f"http://127.0.0.1:{port}/hooks"
    endpoint = api.post("/api/v1/webhooks", {"url": url}, format="json").json()
    out = tmp_path / "out"
    with out.open("w") as stdout:
        receiver = subprocess.Popen(
            [sys.executable, str(ROOT / "examples/receiver.py"), "--port", str(port)],
            env={"SLUICE_WEBHOOK_SECRET": endpoint["secret"], "PATH": "/usr/bin:/bin"},
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for(lambda: "listening" in receiver.stderr.readline(), timeout=20)
            forged = requests.post(url, data=b"{}", headers={"webhook-id": "x"}, timeout=5)
            assert forged.status_code == 400
            test = api.post(
                f"/api/v1/webhooks/{endpoint['id']}/test",
                {"event_type": "contact.verified"},
                format="json",
            )
            assert test.status_code == 202
            wait_for(lambda: out.read_text().strip(), timeout=30, message="nothing printed")
        finally:
            receiver.terminate()
            receiver.wait(10)
    printed = json.loads(out.read_text().splitlines()[0])
    assert printed["type"] == "contact.verified" and printed["result"] == "VERIFIED"
    assert printed["email"] == "sarah.chen@stripe.com"
