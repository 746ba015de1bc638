"""PostgreSQL schema migrations, in order. ``schema_migrations`` records each one applied.

Never edit a migration that has shipped: append a new one. The tables mirror the SQLite schema
(``sqlite_schema.py``) with PostgreSQL types: times are ``timestamptz``; JSON (incident state,
event data, effect payloads, labels) is ``text`` written by ``bridge.store.codec``, so both
backends hold byte-identical documents (``jsonb`` would reorder keys, e.g. an alert's labels,
and refuses ``\\u0000``).
"""

from __future__ import annotations

# The table that says which migrations ran. Created (if missing) under the migration lock.
MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""

MIGRATIONS: tuple[str, ...] = (
    # 1: incidents, timeline, outbox, counters, GitHub issue records
    """
    CREATE TABLE counters (
        name  TEXT PRIMARY KEY,
        value BIGINT NOT NULL
    );
    CREATE TABLE incidents (
        id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        key         TEXT NOT NULL,
        kind        TEXT NOT NULL,
        number      INTEGER NOT NULL,
        state       TEXT NOT NULL,
        priority    TEXT NOT NULL,
        opened_at   TIMESTAMPTZ NOT NULL,
        resolved_at TIMESTAMPTZ,
        data        TEXT NOT NULL,
        updated_at  TIMESTAMPTZ NOT NULL,
        UNIQUE (kind, number)
    );
    CREATE INDEX incidents_by_key ON incidents (key, id);
    CREATE INDEX incidents_by_state ON incidents (state, priority);
    CREATE INDEX incidents_resolved ON incidents (resolved_at) WHERE state <> 'open';
    CREATE TABLE events (
        incident_id BIGINT NOT NULL REFERENCES incidents (id),
        seq         INTEGER NOT NULL,
        at          TIMESTAMPTZ NOT NULL,
        kind        TEXT NOT NULL,
        text        TEXT NOT NULL,
        data        TEXT NOT NULL,
        PRIMARY KEY (incident_id, seq)
    );
    CREATE TABLE outbox (
        id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        incident_id     BIGINT NOT NULL REFERENCES incidents (id),
        kind            TEXT NOT NULL,
        payload         TEXT NOT NULL,
        state           TEXT NOT NULL
                        CHECK (state IN ('pending', 'running', 'done', 'failed')),
        attempts        INTEGER NOT NULL DEFAULT 0,
        claim           BIGINT NOT NULL DEFAULT 0,  -- fencing token, bumped by every claim
        outcome_unknown BOOLEAN NOT NULL DEFAULT false,
        created_at      TIMESTAMPTZ NOT NULL,
        next_attempt_at TIMESTAMPTZ NOT NULL,
        lease_until     TIMESTAMPTZ,
        finished_at     TIMESTAMPTZ,
        last_error      TEXT
    );
    CREATE INDEX outbox_due ON outbox (next_attempt_at, id) WHERE state = 'pending';
    CREATE INDEX outbox_active ON outbox (incident_id, id) WHERE state IN ('pending', 'running');
    CREATE INDEX outbox_leases ON outbox (lease_until) WHERE state = 'running';
    CREATE INDEX outbox_finished ON outbox (finished_at) WHERE state IN ('done', 'failed');
    CREATE TABLE github_issues (
        incident_id BIGINT NOT NULL REFERENCES incidents (id),
        repository  TEXT NOT NULL,
        number      INTEGER NOT NULL,
        url         TEXT NOT NULL,
        title       TEXT NOT NULL,
        body        TEXT NOT NULL,
        region      TEXT NOT NULL,
        labels      TEXT NOT NULL,
        state       TEXT NOT NULL,
        etag        TEXT,
        PRIMARY KEY (incident_id, repository)
    );
    """,
    # 2: P0/P1 effects claimed first; the GitHub writer lease and write budget (shared state)
    """
    ALTER TABLE outbox ADD COLUMN urgent BOOLEAN NOT NULL DEFAULT false;
    CREATE INDEX outbox_due_urgent ON outbox (urgent DESC, next_attempt_at, id)
        WHERE state = 'pending';
    CREATE TABLE leases (
        name   TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        until  TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE github_writes (at TIMESTAMPTZ NOT NULL);
    CREATE INDEX github_writes_at ON github_writes (at);
    CREATE TABLE github_budget (
        name       TEXT PRIMARY KEY,
        factor     DOUBLE PRECISION NOT NULL,
        changed_at TIMESTAMPTZ NOT NULL
    );
    """,
    # 3: storm mode: the roll-up of a storm (an incidents row of kind 'storm') and what it lists
    """
    CREATE TABLE storms (
        incident_id  BIGINT PRIMARY KEY REFERENCES incidents (id),
        edited_at    TIMESTAMPTZ,
        over_at      TIMESTAMPTZ,
        announced_at TIMESTAMPTZ
    );
    CREATE INDEX storms_active ON storms (incident_id) WHERE over_at IS NULL;
    CREATE TABLE storm_members (
        incident_id BIGINT PRIMARY KEY REFERENCES incidents (id),
        storm_id    BIGINT NOT NULL REFERENCES incidents (id),
        joined_at   TIMESTAMPTZ NOT NULL
    );
    CREATE INDEX storm_members_by_storm ON storm_members (storm_id);
    """,
    # 4: outbox lanes: GitHub and each notification channel claim their own effects, so one
    # channel down never delays another
    """
    ALTER TABLE outbox ADD COLUMN lane TEXT NOT NULL DEFAULT 'github';
    CREATE INDEX outbox_lane_due ON outbox (lane, urgent DESC, next_attempt_at, id)
        WHERE state = 'pending';
    CREATE INDEX outbox_lane_active ON outbox (incident_id, lane, id)
        WHERE state IN ('pending', 'running');
    """,
    # 5: what a notification channel keeps per incident (Slack's root message)
    """
    CREATE TABLE notify_state (
        incident_id BIGINT NOT NULL REFERENCES incidents (id),
        channel     TEXT NOT NULL,
        data        TEXT NOT NULL,
        PRIMARY KEY (incident_id, channel)
    );
    """,
    # 6: storm control per person and channel: what was sent (the window's count) and what was
    # held for a bundle (the outbox effect that will tell it, ``bundle_id``)
    """
    CREATE TABLE notify_log (
        channel   TEXT NOT NULL,
        recipient TEXT NOT NULL,
        effect_id BIGINT NOT NULL,
        at        TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (channel, recipient, effect_id)
    );
    CREATE INDEX notify_log_at ON notify_log (channel, recipient, at);
    CREATE TABLE notify_held (
        effect_id   BIGINT PRIMARY KEY,
        channel     TEXT NOT NULL,
        recipient   TEXT NOT NULL,
        incident_id BIGINT NOT NULL REFERENCES incidents (id),
        event_seq   INTEGER NOT NULL,
        bundle_id   BIGINT NOT NULL,
        held_at     TIMESTAMPTZ NOT NULL
    );
    CREATE INDEX notify_held_by_person ON notify_held (channel, recipient, bundle_id);
    CREATE INDEX notify_held_by_bundle ON notify_held (bundle_id);
    """,
    # 7: the on-call lifecycle: an incident's next timer (``Incident.due_at``), found by index;
    # named marks (the heartbeat's last Watchdog); GitHub webhook deliveries seen (replays)
    """
    ALTER TABLE incidents ADD COLUMN due_at TIMESTAMPTZ;
    CREATE INDEX incidents_due ON incidents (due_at) WHERE due_at IS NOT NULL;
    CREATE TABLE marks (
        name TEXT PRIMARY KEY,
        at   TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE github_deliveries (
        id TEXT PRIMARY KEY,
        at TIMESTAMPTZ NOT NULL
    );
    CREATE INDEX github_deliveries_at ON github_deliveries (at);
    """,
    # 8: storm control's bundles stand apart from their incident's order: a bundle tells a
    # person about several incidents, so it neither waits for nor holds back the messages of the
    # incident it was queued on (the claims' oldest-unfinished rule skips it both ways)
    """
    ALTER TABLE outbox ADD COLUMN bundle BOOLEAN NOT NULL DEFAULT false;
    UPDATE outbox SET bundle = true WHERE id IN (SELECT bundle_id FROM notify_held);
    """,
    # 9: whom a message is for (email address, phone number; '' for GitHub and Slack): an
    # incident's effects run in order per lane and recipient, so one person's mailbox failing
    # never holds back another person's message about the same incident
    """
    ALTER TABLE outbox ADD COLUMN recipient TEXT NOT NULL DEFAULT '';
    UPDATE outbox SET recipient = coalesce(payload::json ->> 'to', '')
        WHERE lane IN ('email', 'sms') AND state IN ('pending', 'running');
    """,
    # 10: post-incident reviews (bridge/review.py): when each review's one reminder is due (NULL:
    # none pending) and when it was queued; kept per review, not on the incident, so a review
    # is reminded of even after a newer incident of its alert group took the identity
    """
    CREATE TABLE reviews (
        incident_id BIGINT PRIMARY KEY REFERENCES incidents (id),
        due_at      TIMESTAMPTZ,
        reminded_at TIMESTAMPTZ
    );
    CREATE INDEX reviews_due ON reviews (due_at) WHERE due_at IS NOT NULL;
    """,
)
