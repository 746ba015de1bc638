"""Email to stakeholders over SMTP (aiosmtplib): STARTTLS, optional login, text + HTML.

With ``starttls`` (the default) the connection is upgraded before anything else is said, the
server's certificate checked against the system's CAs or ``ca_file`` (a private CA), and the
login and the message go over TLS only; nothing is ever sent in clear text instead.

Failures are classified for the outbox: the server unreachable or answering 4xx is retryable (and
nothing went out); a 5xx refusal (a bad address, a refused sender, a failed login) is permanent;
a connection lost or timed out after the message was handed over may have delivered it, so the
retry says the outcome is unknown (email is at least once, never lost). A server that does not
offer STARTTLS while ``starttls`` is set, one whose certificate is not trusted, and one that offers
no AUTH while a login is configured fail permanently, like a bad password: the same attempt
cannot succeed until someone changes the server or the configuration (or, for a missing STARTTLS,
someone between us and the server stopped stripping it), so failing at once tells the person on
their next channel now and puts the reason in the issue timeline, instead of holding every email
back until the response deadline.
"""

from __future__ import annotations

import contextlib
import ssl
from email.message import EmailMessage
from email.utils import formataddr, make_msgid

import aiosmtplib

from bridge.config import EmailConfig
from bridge.effects import EffectError
from bridge.model import Lane
from bridge.notify import render
from bridge.notify.base import Bundle, Notice


def build_message(config: EmailConfig, notice: Notice) -> EmailMessage:
    message = EmailMessage()
    message["From"] = config.from_
    message["To"] = formataddr((notice.recipient_name, notice.recipient))
    message["Subject"] = render.subject(notice.incident, notice.event)
    domain = config.from_.rpartition("@")[2] or None
    message["Message-ID"] = make_msgid(
        idstring=f"{notice.event.event_id(notice.incident)}", domain=domain
    )
    message.set_content(render.text_body(notice))
    message.add_alternative(render.html_body(notice), subtype="html")
    return message


def build_bundle_message(config: EmailConfig, bundle: Bundle) -> EmailMessage:
    """One email of everything storm control held for ``bundle.recipient``."""
    message = EmailMessage()
    message["From"] = config.from_
    message["To"] = formataddr((bundle.recipient_name, bundle.recipient))
    message["Subject"] = render.bundle_subject(bundle.items)
    domain = config.from_.rpartition("@")[2] or None
    message["Message-ID"] = make_msgid(idstring=f"bundle-{bundle.key}", domain=domain)
    message.set_content(render.bundle_text_body(bundle.items))
    message.add_alternative(render.bundle_html_body(bundle.items), subtype="html")
    return message


class EmailNotifier:
    channel: Lane = "email"

    def __init__(self, config: EmailConfig) -> None:
        self._config = config
        # The trust for STARTTLS: ``ca_file`` (a private CA) instead of the system's CAs.
        self._tls = ssl.create_default_context(
            cafile=str(config.ca_file) if config.ca_file is not None else None
        )

    async def send(self, notice: Notice) -> dict[str, str]:
        await self._deliver(build_message(self._config, notice))
        return {}

    async def send_bundle(self, bundle: Bundle) -> None:
        await self._deliver(build_bundle_message(self._config, bundle))

    async def _deliver(self, message: EmailMessage) -> None:
        config = self._config
        client = aiosmtplib.SMTP(
            hostname=config.smtp_host,
            port=config.smtp_port,
            timeout=config.timeout.total_seconds(),
            start_tls=False,  # below, explicitly: never an opportunistic, silent downgrade
        )
        try:
            await client.connect()
            await self._secure_and_login(client)
            await client.send_message(message)
        except aiosmtplib.SMTPRecipientsRefused as error:
            codes = sorted({refusal.code for refusal in error.recipients})
            raise EffectError(
                f"SMTP refused the recipient ({', '.join(map(str, codes))})",
                retryable=all(400 <= code < 500 for code in codes),
                status=codes[0] if codes else None,
            ) from None
        except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPConnectTimeoutError) as error:
            raise EffectError(
                f"SMTP server unreachable: {type(error).__name__}", retryable=True
            ) from None
        except aiosmtplib.SMTPResponseException as error:
            raise EffectError(
                f"SMTP {error.code}: {error.message[:200]}",
                retryable=400 <= error.code < 500,
                status=error.code,
            ) from None
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError) as error:
            # Possibly after the server took the message: repeat, but say so.
            raise EffectError(
                f"SMTP connection lost: {type(error).__name__}",
                retryable=True,
                outcome_unknown=True,
            ) from None
        except ssl.SSLCertVerificationError as error:
            raise EffectError(
                f"SMTP server's certificate is not trusted ({error.verify_message});"
                " email.ca_file names a private CA",
                retryable=False,
            ) from None
        except (aiosmtplib.SMTPException, OSError) as error:
            raise EffectError(f"SMTP failed: {type(error).__name__}", retryable=True) from None
        else:
            # Delivered: how the goodbye goes changes nothing.
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await client.quit()
        finally:
            client.close()

    async def _secure_and_login(self, client: aiosmtplib.SMTP) -> None:
        """STARTTLS when configured (refusing to go on without it), then the login if any."""
        config = self._config
        if config.starttls:
            await client.ehlo()
            if not client.supports_extension("starttls"):
                raise EffectError(
                    "SMTP server does not offer STARTTLS (email.starttls is true):"
                    " nothing sent unencrypted",
                    retryable=False,
                )
            await client.starttls(tls_context=self._tls)
        if config.username is None or config.password is None:
            return
        await client.ehlo()
        if not client.supports_extension("auth"):
            raise EffectError(
                "SMTP server offers no AUTH"
                + ("" if config.starttls else " without TLS (email.starttls is false)")
                + ": cannot log in as email.username",
                retryable=False,
            )
        await client.login(config.username, config.password.get())

    async def close(self) -> None:
        return None
