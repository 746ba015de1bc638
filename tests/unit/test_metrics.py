"""The metrics' label values created up front match what the code records."""

from __future__ import annotations

import re
from pathlib import Path

from bridge.github import client
from bridge.metrics import GITHUB_OPERATIONS, Metrics


def test_every_github_operation_the_client_names_has_its_series_up_front() -> None:
    """Each operation the GitHub client records (the name it passes to ``_request``, or
    straight to ``github_requests``) is in GITHUB_OPERATIONS, so its series are at 0 on
    /metrics from start-up instead of absent until the first call."""
    source = Path(client.__file__).read_text()
    named = set(re.findall(r'_request\(\s*"(\w+)"', source))
    named |= set(re.findall(r'github_requests\.labels\(\s*"(\w+)"', source))
    assert len(named) >= 10
    assert named <= set(GITHUB_OPERATIONS), named - set(GITHUB_OPERATIONS)


def test_the_github_series_exist_at_zero() -> None:
    """Every operation's working statuses and "error" are there before any request."""
    metrics = Metrics()
    for operation, statuses in GITHUB_OPERATIONS.items():
        assert "error" in statuses
        for status in statuses:
            value = metrics.registry.get_sample_value(
                "incident_bridge_github_requests_total",
                {"operation": operation, "status": status},
            )
            assert value == 0.0, (operation, status)
