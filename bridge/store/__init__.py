"""Durable state: incidents, timeline, outbox. ``bridge.app.make_store`` picks the backend."""
