"""The README's run command on the embedded default (SQLite + filesystem broker, no Redis):
``scripts/run`` starts everything, and a sandbox and a live contact come back finished."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest
import requests

from tests.support.simulator import free_port
from tests.support.worker import ROOT, wait_for

pytestmark = pytest.mark.e2e


def test_scripts_run_serves_the_api_end_to_end():
    var = Path(tempfile.mkdtemp(prefix="sluice-embedded-"))
    port, simulator_port = free_port(), free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "SLUICE_TESTING"}
    }
    env |= {"SLUICE_VAR_DIR": str(var), "PORT": str(port), "SIMULATOR_PORT": str(simulator_port)}
    log = open(var / "run.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        ["scripts/run"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def printed(name: str) -> str | None:
            found = re.search(rf"{name}\s*:\s*(sk_\w+)", (var / "run.log").read_text())
            return found.group(1) if found else None

        sandbox_key = wait_for(
            lambda: printed("sandbox key"), timeout=120, message="scripts/run printed no key"
        )
        live_key = printed("live key")

        def up() -> bool:
            try:
                return requests.get(f"{base}/readyz", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_for(up, timeout=60, message="the API never became ready")
        results = {}
        for key in (sandbox_key, live_key):
            headers = {"Authorization": f"Bearer {key}"}
            accepted = requests.post(
                f"{base}/api/v1/enrich",
                headers=headers,
                timeout=10,
                json={
                    "first_name": "Sarah",
                    "last_name": "Chen",
                    "company_name": "Stripe",
                    "domain": "stripe.com",
                    "enrichment_type": ["email"],
                    "custom": {"k": 1},
                },
            )
            assert accepted.status_code == 202, accepted.text
            url = f"{base}/api/v1/contacts/{accepted.json()['enrichment_id']}"

            def finished(url=url, headers=headers):
                body = requests.get(url, headers=headers, timeout=10).json()
                return body if body["status"] == "finished" else None

            results[key] = wait_for(finished, timeout=60, message="contact never finished")
        sandbox = results[sandbox_key]
        assert sandbox["result"]["email"] == "sarah.chen@stripe.com"
        assert sandbox["sandbox"] is True and sandbox["custom"] == {"k": 1}
        # The banner's export line, pasted into a shell, is what the `sluice` command reads.
        exported = re.search(
            r"export SLUICE_BASE_URL=(\S+) SLUICE_API_KEY=(\S+)", (var / "run.log").read_text()
        )
        assert exported and exported.groups() == (base, sandbox_key)
        cli = subprocess.run(
            [str(ROOT / ".venv/bin/sluice"), "credits", "--json"],
            env=env | {"SLUICE_BASE_URL": base, "SLUICE_API_KEY": sandbox_key},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert cli.returncode == 0 and "plan" in json.loads(cli.stdout), cli.stderr
        live = results[live_key]
        assert live["sandbox"] is False
        # The live contact went through the real adapters to the simulator process.
        assert {a["provider"] for a in live["attempts"]} <= {"hunter", "pdl", "apollo"}
        assert live["attempts"], live
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
