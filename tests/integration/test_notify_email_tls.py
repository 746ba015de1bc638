"""Email over STARTTLS with a login, against a real aiosmtpd server whose certificate comes from
a private CA made for the test (``email.ca_file``); and what happens when TLS or the login cannot
be had: each fails permanently, at once, with the reason in the issue timeline (never a message
sent unencrypted instead).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.clock import FakeClock
from bridge.config import ConfigError, load_config
from bridge.web.services import SERVICES
from fakes.github import FakeGitHub
from fakes.smtp import Mailbox, PrivateCA, private_ca, smtp_server
from support import REPO, Harness, github_config, payload

USER, PASSWORD = "bridge", "s3cret-smtp-password"
ALICE, BOB = "alice@example.com", "bob@example.com"


@pytest.fixture
def ca(tmp_path: Path) -> PrivateCA:
    return private_ca(tmp_path / "tls")


@pytest.fixture
def tls_server(ca: PrivateCA) -> Iterator[Mailbox]:
    """Requires STARTTLS before anything, and AUTH (offered only over TLS)."""
    with smtp_server(
        tls=ca.server_context(), require_starttls=True, credentials=(USER, PASSWORD)
    ) as box:
        yield box


def email_config(port: int, *, password: str = PASSWORD, ca_file: str | None = "tls/ca.pem") -> str:
    return (
        "email:\n"
        "  smtp_host: 127.0.0.1\n"
        f"  smtp_port: {port}\n"
        "  starttls: true\n"
        f"  username: {USER}\n"
        f"  password: {password}\n"
        + (f"  ca_file: {ca_file}\n" if ca_file is not None else "")
        + "  from: incident-bridge@example.com\n"
        "stakeholders:\n"
        f"  - {{name: Alice Ops, email: {ALICE}}}\n"
        f"  - {{name: Bob Lead, email: {BOB}}}\n"
    )


async def failures(h: Harness) -> list[str]:
    assert h.app is not None
    store = h.app[SERVICES].store
    [row] = await store.list_incidents(REPO)
    assert row.incident.id is not None
    events = await store.load_events(row.incident.id, 100)
    return [e.text for e in events if e.kind == "effect_failed"]


async def test_starttls_with_a_private_ca_and_a_login_delivers_over_tls(
    tmp_path: Path, github: FakeGitHub, clock: FakeClock, tls_server: Mailbox
) -> None:
    """The server demands STARTTLS and AUTH; its certificate is signed by the test's own CA,
    trusted through ``email.ca_file`` (relative to the config file). Both stakeholders get the
    P0 email, once, over TLS, after the bridge logged in."""
    h = Harness(tmp_path, github, clock, github_config(email_config(tls_server.port)))
    await h.start()
    try:
        await h.post(payload("13_critical_list_service_unavailable.json"))
        await h.drain()
        assert sorted(rcpt for rcpt, _ in tls_server.received) == [ALICE, BOB]
        assert tls_server.tls == [True, True]
        assert tls_server.logins == [USER, USER]
        assert await failures(h) == []
    finally:
        await h.stop()


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("untrusted", "SMTP server's certificate is not trusted"),
        ("bad password", "SMTP 535: 5.7.8 Authentication credentials invalid"),
    ],
)
async def test_an_untrusted_certificate_or_a_bad_password_fails_permanently(
    tmp_path: Path,
    github: FakeGitHub,
    clock: FakeClock,
    tls_server: Mailbox,
    case: str,
    expected: str,
) -> None:
    """Without the private CA the server's certificate is not trusted; with a wrong password
    the server refuses the login (535). Either way each email fails at once, for good — the
    issue timeline says why, the password never appears — and nothing is retried or sent."""
    config = (
        email_config(tls_server.port, ca_file=None)
        if case == "untrusted"
        else email_config(tls_server.port, password="wrong-password")
    )
    h = Harness(tmp_path, github, clock, github_config(config))
    await h.start()
    try:
        await h.post(payload("13_critical_list_service_unavailable.json"))
        await h.drain()
        lines = await failures(h)
        assert len(lines) == 2
        assert all(
            line.startswith(f"notify.email failed permanently: {expected}") for line in lines
        )
        assert not any(PASSWORD in line or "wrong-password" in line for line in lines)
        clock.advance(3600)
        await h.drain()
        assert tls_server.received == []
        assert tls_server.logins == []
        assert len(await failures(h)) == 2
    finally:
        await h.stop()


async def test_a_server_without_starttls_is_never_sent_mail_in_clear_text(
    tmp_path: Path, github: FakeGitHub, clock: FakeClock, ca: PrivateCA
) -> None:
    """``starttls: true`` and the server offers no STARTTLS (misconfigured, or stripped on the
    way): the bridge does not fall back to clear text — the plain server would have taken the
    mail — but fails each email permanently with the reason in the timeline."""
    with smtp_server() as plain:
        config = email_config(plain.port).replace(
            f"  username: {USER}\n  password: {PASSWORD}\n", ""
        )
        h = Harness(tmp_path, github, clock, github_config(config))
        await h.start()
        try:
            await h.post(payload("13_critical_list_service_unavailable.json"))
            await h.drain()
            lines = await failures(h)
            assert (
                lines
                == [
                    "notify.email failed permanently: SMTP server does not offer STARTTLS"
                    " (email.starttls is true): nothing sent unencrypted"
                ]
                * 2
            )
            clock.advance(3600)
            await h.drain()
            assert plain.received == []
        finally:
            await h.stop()


@pytest.mark.parametrize(
    ("ca_file", "content", "problem"),
    [
        ("missing.pem", None, "cannot read {dir}/missing.pem: No such file or directory"),
        ("junk.pem", "not a certificate\n", "{dir}/junk.pem holds no PEM certificate"),
        ("", None, "must be the path of a PEM file of CA certificates"),
    ],
)
def test_a_ca_file_that_is_not_a_readable_pem_bundle_is_a_config_error(
    tmp_path: Path, ca_file: str, content: str | None, problem: str
) -> None:
    """``email.ca_file`` is checked when the config loads, relative to the config file."""
    if content is not None:
        (tmp_path / ca_file).write_text(content)
    path = tmp_path / "bridge.yaml"
    path.write_text(email_config(25, ca_file=ca_file or "''"))
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    [line] = caught.value.problems
    assert line.endswith(f"email.ca_file: {problem.format(dir=tmp_path)}")


def test_a_ca_file_without_starttls_is_a_config_error(tmp_path: Path, ca: PrivateCA) -> None:
    """A private CA while ``starttls`` is false would suggest an encryption that never
    happens: refused, naming the key."""
    path = tmp_path / "bridge.yaml"
    path.write_text(email_config(25).replace("starttls: true", "starttls: false"))
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    [line] = caught.value.problems
    assert line.endswith("email.ca_file: is set but starttls is false: mail would go unencrypted")


def test_a_relative_ca_file_is_resolved_against_the_config_file(
    tmp_path: Path, ca: PrivateCA
) -> None:
    """Relative to the config file, as every path in it."""
    path = tmp_path / "bridge.yaml"
    path.write_text(email_config(25))
    config = load_config(path, {})
    assert config.email is not None
    assert config.email.ca_file == ca.ca_file
