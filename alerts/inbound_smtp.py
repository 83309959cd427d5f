"""The optional inbound SMTP listener (aiosmtpd) for e-mail replies: the territory's mail
server forwards replies to the alert address here; each is parsed and, when it carries a
command such as "ACK 4821" from a known contact's address, acknowledged in their scope."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ecocluster.alerts.replies import parse_email_reply

__all__ = ["ReplyListener"]

_log = logging.getLogger(__name__)
_MAX_BYTES = 1_000_000


class ReplyListener:
    """Usage: `ReplyListener(service, host, port).start(loop)`; `.stop()`."""

    def __init__(self, service: Any, *, host: str, port: int) -> None:
        self.service = service
        self.host, self.port = host, port
        self._server: asyncio.AbstractServer | None = None
        self.handled = 0

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        from aiosmtpd.smtp import SMTP

        listener = self

        class _Handler:
            async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
                raw = envelope.original_content or envelope.content or b""
                if len(raw) > _MAX_BYTES:
                    return "552 Message too large"
                message = parse_email_reply(raw, envelope.mail_from)
                outcome = await listener.service.handle_reply(message)
                listener.handled += 1
                _log.info("e-mail reply: %s", outcome.message)
                return "250 OK"

        handler = _Handler()
        self._task = loop.create_task(
            self._serve(loop, lambda: SMTP(handler, hostname="ecocluster"))
        )

    async def _serve(self, loop: asyncio.AbstractEventLoop, factory: Any) -> None:
        self._server = await loop.create_server(factory, self.host, self.port)
        _log.info("inbound SMTP for replies on %s:%d", self.host, self.port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self._task.cancel()
