"""Outgoing mail (invitations, password resets): a folder by default, SMTP when configured."""

from __future__ import annotations

import asyncio
import os
import smtplib
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlparse

from inwire.kit.ids import new_id


class Mailer:
    """Sends a plain-text message to ``file://dir`` (one .eml file each) or ``smtp://host:port``."""

    def __init__(self, url: str, sender: str = "inwire@localhost") -> None:
        self.url = url
        self.sender = sender
        parsed = urlparse(url)
        if parsed.scheme not in ("file", "smtp"):
            raise ValueError(f"unsupported mail URL {url!r}: use file:// or smtp://")
        self.scheme = parsed.scheme
        self.path = Path(parsed.path)
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or 25

    async def send(self, to: str, subject: str, body: str) -> None:
        """Deliver one message."""
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = self.sender, to, subject
        msg.set_content(body)
        await asyncio.to_thread(self._deliver, msg)

    def _deliver(self, msg: EmailMessage) -> None:
        if self.scheme == "file":
            self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
            target = self.path / f"{new_id('mail')}.eml"
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(bytes(msg))
            return
        with smtplib.SMTP(self.host, self.port, timeout=10) as smtp:
            smtp.send_message(msg)
