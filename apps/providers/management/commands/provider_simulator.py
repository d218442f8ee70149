"""``manage.py provider_simulator --port PORT``: run the provider simulator in the foreground."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from apps.providers.simulator.server import DEFAULT_PORT, SimulatorConfig, serve


class Command(BaseCommand):
    help = "Serve Hunter-, PDL- and Apollo-shaped answers from a deterministic synthetic data set."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--port", type=int, default=DEFAULT_PORT)
        parser.add_argument(
            "--host", default="127.0.0.1", help="Bind address (0.0.0.0 inside a container)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        config = SimulatorConfig.from_env()
        server = serve(options["host"], options["port"], config)
        host, port = server.server_address[:2]
        vendors = ", ".join(
            f"{name}: {v.latency_ms:g}ms hit={v.hit_rate:g} err={v.error_rate:g}"
            for name, v in config.vendors.items()
        )
        # The first line is what scripts and tests wait for.
        self.stdout.write(f"provider simulator listening on http://{host}:{port} ({vendors})")
        self.stdout.flush()
        try:
            server.serve_forever(poll_interval=0.5)
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
