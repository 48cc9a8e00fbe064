"""Outgoing mail (invitations) over SMTP with aiosmtplib; the Mailer protocol lets a deployment plug in another."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

import aiosmtplib
import structlog

log = structlog.get_logger(__name__)


class Mailer(Protocol):
    async def send(self, *, to: str, subject: str, body: str) -> bool:
        """Deliver one plain-text message; False when the mail server refused it or could not be reached."""
        ...


@dataclass(frozen=True, slots=True)
class SmtpMailer:
    host: str
    port: int
    sender: str
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout_seconds: float = 10.0

    async def send(self, *, to: str, subject: str, body: str) -> bool:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = self.sender, to, subject
        message.set_content(body)
        try:
            await aiosmtplib.send(
                message,
                hostname=self.host,
                port=self.port,
                username=self.username,
                password=self.password,
                start_tls=self.starttls,
                timeout=self.timeout_seconds,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            # the invitation stands without the mail: its link is shown to the inviter, who can pass it on
            log.warning("mail.failed", error=type(exc).__name__, host=self.host)
            return False
        return True
