"""A real SMTP server on loopback (aiosmtpd) that keeps what it accepts and refuses on demand."""

from __future__ import annotations

import email
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Mailbox:
    """The aiosmtpd handler: ``received`` is every (recipient, message) accepted;
    ``refuse_rcpt`` maps an address to the SMTP answer refusing it; ``data_answer`` answers
    every message (e.g. ``"451 try again later"``) instead of accepting it."""

    port: int = 0
    received: list[tuple[str, Message]] = field(default_factory=list)
    refuse_rcpt: dict[str, str] = field(default_factory=dict)
    data_answer: str | None = None

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.refuse_rcpt:
            return self.refuse_rcpt[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_answer is not None:
            return self.data_answer
        message = email.message_from_bytes(envelope.content)
        for rcpt in envelope.rcpt_tos:
            self.received.append((rcpt, message))
        return "250 Message accepted"

    def to(self, address: str) -> list[Message]:
        return [m for rcpt, m in self.received if rcpt == address]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def smtp_server() -> Iterator[Mailbox]:
    """An SMTP server on 127.0.0.1 for the duration of the block; ``mailbox.port`` is its port."""
    mailbox = Mailbox(port=_free_port())
    controller = Controller(mailbox, hostname="127.0.0.1", port=mailbox.port)
    controller.start()
    try:
        yield mailbox
    finally:
        controller.stop()
