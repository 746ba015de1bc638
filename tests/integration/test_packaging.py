"""The wheel is what `pip install .` installs: it must carry the bundled rules."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_ships_the_bundled_rules_as_package_data(tmp_path: Path) -> None:
    """`pip install .` works anywhere: rules/ travels inside the wheel as bridge/bundled_rules."""
    subprocess.run(  # noqa: S603 -- pip on our own checkout
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        timeout=300,
    )
    [wheel] = tmp_path.glob("incident_bridge-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for data in ("priorities.yaml", "thresholds.yaml", "critical.yaml", "rules.yaml"):
        assert f"bridge/bundled_rules/{data}" in names
    assert any(n.startswith("bridge/bundled_rules/runbooks/") for n in names)
    assert "bridge/cli.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "incident-bridge = bridge.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
