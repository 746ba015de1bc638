"""The HTML report in a real headless browser (Debian's chromium), at phone size, light and dark.

The report is made end to end: captured payloads posted to the bridge, one with hostile alert
text, then ``incident-bridge report --format html --output FILE`` as a process on the same store.
Chromium builds the DOM from that file (no network: the page has no external asset to fetch)
and takes a 390x844 screenshot in each colour scheme.

CI installs chromium with .ci/install-chromium; without it these tests fail, they never skip.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import struct
import sys
import zlib
from datetime import timedelta
from pathlib import Path

import pytest

from support import Harness, payload

WINDOW_SIZE = "390,844"  # an iPhone 12-14 viewport, in CSS pixels
HOSTILE = '<img src=x onerror="alert(1)"></svg><script>alert(2)</script> @oncall'


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("chromium is not installed: run .ci/install-chromium (CI calls it)")
    return path


async def run(*args: str) -> bytes:
    """Run a process to the end without blocking the loop serving the bridge."""
    process = await asyncio.create_subprocess_exec(
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "GITHUB_URL": "http://127.0.0.1:9"},
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=90)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, err.decode(errors="replace")[-2000:]
    return out


async def browse(tmp_path: Path, *args: str) -> bytes:
    return await run(
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
    )


def png_size_and_first_pixel(data: bytes) -> tuple[tuple[int, int], tuple[int, int, int]]:
    """A PNG's size and its top-left pixel (8-bit RGB or RGBA, as chromium writes them). The
    first pixel of the first row is stored as is, whatever the row's filter."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    assert (depth, colour) in ((8, 2), (8, 6)), (depth, colour)
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        if data[pos + 4 : pos + 8] == b"IDAT":
            chunks.append(data[pos + 8 : pos + 8 + length])
        pos += 12 + length
    row = zlib.decompressobj().decompress(b"".join(chunks), 8)
    red, green, blue = row[1], row[2], row[3]  # after the row's filter byte
    return (width, height), (red, green, blue)


async def test_the_html_report_renders_on_a_phone_in_light_and_dark(
    harness: Harness, tmp_path: Path
) -> None:
    """Chromium loads the report: the DOM has the summary, the three charts with their bars,
    the tables, and the hostile summary as text only; phone-sized screenshots in the light and
    the dark scheme show the page's own background."""
    chromium()
    hostile = payload("10_threshold_warning_latency.json")  # stays open: its summary stays
    hostile["commonAnnotations"]["summary"] = HOSTILE
    hostile["alerts"][0]["annotations"]["summary"] = HOSTILE
    await harness.post(payload("15_threshold_critical_error_rate.json"))
    await harness.post(payload("13_critical_list_service_unavailable.json"))
    await harness.post(hostile)
    harness.clock.advance(timedelta(minutes=20))
    await harness.post(payload("16_threshold_critical_error_rate_resolved.json"))
    page = tmp_path / "report.html"
    await run(
        sys.executable,
        "-m",
        "bridge",
        "report",
        "--config",
        str(tmp_path / "bridge.yaml"),
        "--since",
        "1d",
        "--until",
        "2026-11-27T00:00:00Z",
        "--format",
        "html",
        "--output",
        str(page),
    )
    url = page.as_uri()

    dom = (await browse(tmp_path, "--dump-dom", url)).decode()
    assert "<h1>Incident report</h1>" in dom
    assert "MTTD 8m" in dom
    assert dom.count("<svg") == 3
    # Incidents per priority: 4 bars; MTTR: 4; availability: 3 services; each bar on a track.
    assert dom.count("<rect") == 2 * (4 + 4 + 3)
    assert dom.count("<table>") == 4
    assert "<img" not in dom
    assert "<script" not in dom
    assert "&lt;img src=x onerror=" in dom
    assert "Unacknowledged incidents" in dom

    for scheme, flags, background in (
        ("light", (), (255, 255, 255)),
        ("dark", ("--force-dark-mode",), (13, 17, 23)),
    ):
        shot = tmp_path / f"report-{scheme}.png"
        await browse(tmp_path, *flags, f"--screenshot={shot}", url)
        data = shot.read_bytes()
        size, pixel = png_size_and_first_pixel(data)
        assert size == (390, 844)
        assert pixel == background, scheme
        assert len(data) > 20_000  # a page with text, charts and colour, not a blank frame
