"""incident-bridge: Alertmanager webhooks → prioritised GitHub incident issues and notifications."""

__version__ = "0.1.0"
