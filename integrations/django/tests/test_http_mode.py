"""HTTP mode against a real ``salesbot serve`` (a child process on a loopback port),
whose account signs its requests: a deal saved with the bot is routed over signed HTTP;
with the service down the save is kept and nothing is lost, and ``salesbot_retry`` routes
it once the service is back; an assignment the service delivers by webhook is written
back, and only once."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client, override_settings
from test_django_crm import bot, deal, owner_of, user

from salesbot_core.http.signing import SIGNATURE_HEADER, signature_header

ACCOUNT = "global-sales"


def salesbot(*args: str, cwd: Path) -> str:
    """Run the salesbot command line; its standard output."""
    done = subprocess.run(
        [sys.executable, "-m", "salesbot_core", *args], cwd=cwd, capture_output=True, text=True, check=True
    )
    return done.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(folder: Path, port: int) -> Iterator[None]:
    """``salesbot serve`` on ``port`` over the test's rules folder and store, until the
    block ends."""
    command = ["serve", "--port", str(port), "-r", "rules", "--db", "salesbot.db", "--reload-interval", "0.2"]
    process = subprocess.Popen(
        [sys.executable, "-m", "salesbot_core", *command],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"salesbot serve did not start: {process.stderr.read().decode()}")  # type: ignore[union-attr]
                time.sleep(0.1)
        yield
    finally:
        process.terminate()
        process.wait(20)
        process.stderr.close()  # type: ignore[union-attr]


@pytest.fixture
def service(crm: Path) -> Iterator[dict[str, Any]]:
    """The CRM in HTTP mode, and a ``salesbot serve`` for it: an admin token, a signing
    secret for Global sales, a webhook endpoint; the service runs while the test runs."""
    from salesbot_django.conf import config
    from salesbot_django.sync import sync

    port = free_port()
    token = salesbot("token", "create", "--admin", "--name", "crm", "--db", "salesbot.db", cwd=crm).strip()
    signing = salesbot("signing", "enable", "--account", ACCOUNT, "--db", "salesbot.db", cwd=crm).strip()
    hook = salesbot(
        "webhook",
        "add",
        "http://127.0.0.1:9/unused",
        "--account",
        ACCOUNT,
        "--events",
        "assignment",
        "--db",
        "salesbot.db",
        cwd=crm,
    ).split()[-1]
    http = {
        **settings.SALESBOT,
        "MODE": "http",
        "URL": f"http://127.0.0.1:{port}",
        "TOKEN": token,
        "SIGNING_SECRET": signing,
        "WEBHOOK_SECRET": hook,
        "TIMEOUT": 5,
    }
    with override_settings(SALESBOT=http):
        sync(config())  # the rules the service starts with: the team and the bot
        bot()
        yield {"folder": crm, "port": port, "token": token}


def test_a_deal_is_routed_over_signed_http(service: dict[str, Any]) -> None:
    from tasks.models import Memo

    with serving(service["folder"], service["port"]):
        offer = deal("Over HTTP", bot())
    assert owner_of(offer) == "anna"
    assert list(Memo.objects.filter(deal=offer).values_list("note", flat=True)) == [
        "Assigned by Inbound leads to Anna Nowak"
    ]


def test_an_outage_loses_no_routing(service: dict[str, Any]) -> None:
    from salesbot_django.models import PendingEvent
    from tasks.models import Memo

    during = deal("Saved during the outage", bot())  # no service listening
    assert owner_of(during) == "Sales Bot: Inbound leads"
    waiting = PendingEvent.objects.get()
    assert (waiting.entity, waiting.record_id, waiting.attempts) == ("deal", str(during.pk), 0)
    assert "Connection refused" in waiting.last_error
    also = deal("Saved while one waits", bot())
    assert PendingEvent.objects.count() == 2
    with serving(service["folder"], service["port"]):
        call_command("salesbot_retry", stdout=(out := _Lines()))
        assert out.text == "sent 2, waiting 0\n"
        assert [owner_of(during), owner_of(also)] == ["anna", "bartek"]
        call_command("salesbot_retry", stdout=(again := _Lines()))
    assert again.text == "sent 0, waiting 0\n"
    assert Memo.objects.filter(deal__in=[during, also]).count() == 2


def test_an_assignment_delivered_by_webhook_is_written_back_once(service: dict[str, Any]) -> None:
    from tasks.models import Memo

    listed = deal("Listed elsewhere", user("jan"))
    with serving(service["folder"], service["port"]):
        # Another client runs a list operation on the service; salesbot delivers its
        # outcome to the CRM's webhook endpoint, signed with the endpoint's secret.
        from salesbot_django.conf import config
        from salesbot_django.routing import mirrors, send_mirrors

        send_mirrors(mirrors(ACCOUNT, "elsewhere", [(config().entities["deal"], listed)]))
        body = json.dumps(
            {"entity": "deal", "record_ids": [str(listed.pk)], "bot": "inbound", "operation": "elsewhere-1"}
        ).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{service['port']}/v1/accounts/{ACCOUNT}/assignments",
            data=body,
            method="POST",
            headers={
                "Authorization": f"Bearer {service['token']}",
                "Content-Type": "application/json",
                SIGNATURE_HEADER: signature_header([settings.SALESBOT["SIGNING_SECRET"]], body),
            },
        )
        with urllib.request.urlopen(request) as answer:
            (outcome,) = json.load(answer)["outcomes"]
    assert owner_of(listed) == "jan"  # not written back yet: the delivery is what tells the CRM
    delivery = json.dumps({"id": "dlv_1", "type": "assignment", "account": ACCOUNT, "data": outcome}).encode()
    secret = settings.SALESBOT["WEBHOOK_SECRET"]
    client = Client()
    for _ in range(2):  # delivered twice: an answer lost on the way
        page = client.post(
            "/salesbot/webhook/",
            delivery,
            content_type="application/json",
            headers={SIGNATURE_HEADER: signature_header([secret], delivery)},
        )
        assert page.status_code == 204
    assert owner_of(listed) == "anna"
    assert Memo.objects.filter(deal=listed).count() == 1
    forged = client.post(
        "/salesbot/webhook/",
        delivery,
        content_type="application/json",
        headers={SIGNATURE_HEADER: signature_header(["whsec_not-the-secret"], delivery)},
    )
    assert forged.status_code == 403


class _Lines:
    """A command's standard output, kept."""

    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass
