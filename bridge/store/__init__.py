"""Durable state: incidents, timeline, outbox. ``open_store`` picks the backend from the URL."""
