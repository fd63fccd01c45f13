"""The whole sandbox world: Amazon, Xero and Slack stand-ins on loopback ports.

`env()` gives the settings that point the bot at them: the endpoint overrides plus the
sandbox's client credentials. Nothing else changes the bot's code path.
"""

from __future__ import annotations

import contextlib
import signal
import threading

from sandbox.amazon import AmazonSandbox
from sandbox.server import LoopbackServer
from sandbox.slack import SlackSandbox
from sandbox.xero import XeroSandbox

SLACK_SIGNING_SECRET = "sandbox-signing-secret"


class SandboxWorld:
    def __init__(
        self, *, port_base: int = 0, seed: int = 2026, vat_calculation: bool = True
    ) -> None:
        # vat_calculation=False: a seller without Amazon's VAT calculation service, whose VAT
        # reports carry only VAT-inclusive amounts.
        self.amazon = AmazonSandbox(seed=seed, vat_calculation=vat_calculation)
        self.xero = XeroSandbox()
        self.slack = SlackSandbox()
        ports = (port_base, port_base + 1, port_base + 2) if port_base else (0, 0, 0)
        self.amazon_server = LoopbackServer(self.amazon.app, ports[0])
        self.xero_server = LoopbackServer(self.xero.app, ports[1])
        self.slack_server = LoopbackServer(self.slack.app, ports[2])
        self._servers = (self.amazon_server, self.xero_server, self.slack_server)

    def start(self) -> SandboxWorld:
        for server in self._servers:
            server.start()
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.stop()

    def __enter__(self) -> SandboxWorld:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        amazon, xero, slack = (s.url for s in self._servers)
        return {
            "AMAZON_LWA_URL": f"{amazon}/auth/o2/token",
            "AMAZON_SPAPI_URL": amazon,
            "AMAZON_SELLER_CENTRAL_URL": amazon,
            "AMAZON_LWA_CLIENT_ID": self.amazon.client_id,
            "AMAZON_LWA_CLIENT_SECRET": self.amazon.client_secret,
            "AMAZON_SPAPI_APPLICATION_ID": self.amazon.application_id,
            "XERO_API_URL": xero,
            "XERO_IDENTITY_URL": xero,
            "XERO_LOGIN_URL": xero,
            "XERO_CLIENT_ID": self.xero.client_id,
            "XERO_CLIENT_SECRET": self.xero.client_secret,
            "SLACK_API_URL": f"{slack}/api/",
            "SLACK_BOT_TOKEN": self.slack.bot_token,
            "SLACK_SIGNING_SECRET": SLACK_SIGNING_SECRET,
        }


def serve_forever(*, port_base: int) -> int:
    """`python -m bot sandbox`: serve until interrupted, printing the settings to use."""
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with SandboxWorld(port_base=port_base) as world:
        print("Sandbox running. Put these in .env (or the environment) to use it:\n")
        for name, value in world.env().items():
            print(f"{name}={value}")
        print("\nCtrl-C stops it.", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stopped.wait()
    return 0
