"""What the end-to-end, fault and fuzz tests share: a place to put the figures they measure.

Each test hands its figures (notifications sent, faults survived, duplicates, lost, ...) to the
``figures`` fixture; they are printed together at the end of the run, under "reliability
figures", so ``python -m pytest tests/e2e`` (and CI's log) shows them beside the verdicts.
docs/reliability.md quotes them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest

Record = Callable[[Mapping[str, object]], None]

_FIGURES: list[tuple[str, dict[str, object]]] = []


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Record:
    """Record this test's figures, printed at the end of the run under its name."""

    def record(values: Mapping[str, object]) -> None:
        _FIGURES.append((request.node.nodeid, dict(values)))

    return record


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _FIGURES:
        return
    terminalreporter.section("reliability figures")
    for nodeid, values in _FIGURES:
        shown = ", ".join(f"{name}={value}" for name, value in values.items())
        terminalreporter.write_line(f"{nodeid}: {shown}")
