"""The status page in a real headless browser (Debian's chromium) at phone size.

CI installs chromium with .ci/install-chromium; without it these tests fail, they never skip.
"""

from __future__ import annotations

import asyncio
import shutil
import struct
from datetime import timedelta
from pathlib import Path

import pytest

from support import Harness, payload

WINDOW_SIZE = "390,844"  # an iPhone 12-14 viewport, in CSS pixels


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("chromium is not installed: run .ci/install-chromium (CI calls it)")
    return path


async def run_chromium(tmp_path: Path, *args: str) -> bytes:
    """Run headless chromium to the end without blocking the loop serving the page."""
    process = await asyncio.create_subprocess_exec(
        chromium(),
        "--headless",
        "--no-sandbox",  # CI runs as root in a container, where the sandbox cannot start
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        f"--window-size={WINDOW_SIZE}",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=90)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, err.decode(errors="replace")[-2000:]
    return out


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


async def test_the_status_page_renders_in_a_phone_sized_headless_chromium(
    harness: Harness, tmp_path: Path
) -> None:
    """Chromium loads /status from the bridge on 127.0.0.1: the DOM it builds has the posts,
    the availability bars and only public text; a 390x844 screenshot is written."""
    chromium()
    public = payload("15_threshold_critical_error_rate.json")
    public["alerts"][0]["annotations"]["public_summary"] = "Payments are slow for some users"
    await harness.post(public)
    await harness.post(payload("10_threshold_warning_latency.json"))
    harness.clock.advance(timedelta(days=2))
    await harness.post(payload("13_critical_list_service_unavailable.json"))
    url = str(harness.http.make_url("/status"))
    assert url.startswith("http://127.0.0.1:")

    dom = (await run_chromium(tmp_path, "--dump-dom", url)).decode()
    assert "<h1>Service status</h1>" in dom
    assert "Major outage" in dom
    assert "We are investigating reports of Payments are slow for some users." in dom
    assert "We are investigating reports of Service disruption: checkout." in dom
    assert "Availability, last 90 days" in dom
    assert dom.count("<svg") == 3
    assert dom.count("<rect") == 270
    for private in ("checkout-7d9f", "prometheus.example", "runbooks.example", "5xx ratio"):
        assert private not in dom

    shot = tmp_path / "status.png"
    await run_chromium(tmp_path, f"--screenshot={shot}", url)
    data = shot.read_bytes()
    assert png_size(data) == (390, 844)
    assert len(data) > 10_000  # a page with text and colour, not a blank frame
