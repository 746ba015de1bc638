"""Stakeholder and responder notifications: one module per channel behind one protocol.

``policy`` (pure) decides which messages a decision needs — per CONTRACT.md and
``rules/priorities.yaml``: Slack hears about every incident, P0 emails and texts every
stakeholder, P1 emails them, P2/P3 go to the status page only — and each becomes an outbox effect
keyed by incident, event, channel and recipient. ``runner`` turns a claimed effect into a
message (``render``) and hands it to the channel's ``Notifier`` (``email``, ``slack``, ``sms``),
which classifies its failures retryable or permanent for the outbox. Each channel is its own
outbox lane, so one that is down never delays another. ``fallback`` tells a person on their next
channel when one fails for good; email and SMS are throttled per person, with what is held back
sent as one bundled summary.
"""
