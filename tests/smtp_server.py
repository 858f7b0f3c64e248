"""A real SMTP server (aiosmtpd on 127.0.0.1) for the mail and delivery tests.

`SmtpSink` records what it accepts and answers with injected replies;
`run_smtp` runs it for the duration of a block.
"""

import asyncio
import threading
from collections import Counter, defaultdict
from collections.abc import Callable
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from conftest import free_port


class SmtpSink:
    """An aiosmtpd handler that records what it accepts.

    `rcpt_replies[address]` / `data_replies[address]` are lists of replies to
    give, in order, before accepting (e.g. ["451 4.7.1 later"] or ["550 5.1.1 no"]
    repeated). `hold` seconds are spent after a message is recorded and before
    its 250 reply, so a client can be killed with the message in flight;
    `on_received(count)` runs at that moment too (e.g. to cut the database).
    """

    def __init__(self):
        self.received: list[tuple[str, list[str], bytes]] = []
        self.rcpt_replies: dict[str, list[str]] = defaultdict(list)
        self.data_replies: dict[str, list[str]] = defaultdict(list)
        self.rcpt_attempts: Counter = Counter()
        self.connections = 0
        self.hold = 0.0
        # Called with the count of messages received so far, after each is recorded.
        self.on_received: Callable[[int], None] | None = None
        self._lock = threading.Lock()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        with self._lock:
            self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self._lock:
            self.rcpt_attempts[address] += 1
            injected = self.rcpt_replies[address]
            if injected:
                return injected.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        address = envelope.rcpt_tos[0]
        with self._lock:
            injected = self.data_replies[address]
            if injected:
                return injected.pop(0)
            self.received.append(
                (envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
            )
            count = len(self.received)
        if self.on_received is not None:
            self.on_received(count)
        if self.hold:
            await asyncio.sleep(self.hold)
        return "250 Message accepted for delivery"

    def messages(self) -> list[EmailMessage]:
        with self._lock:
            return [message_from_bytes(raw, policy=policy.default) for _, _, raw in self.received]

    def count(self) -> int:
        with self._lock:
            return len(self.received)


@contextmanager
def run_smtp(handler: SmtpSink, **server_options):
    """aiosmtpd on 127.0.0.1 for the duration of the block; yields its port."""
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **server_options)
    controller.start()
    try:
        yield controller.port
    finally:
        controller.stop()
