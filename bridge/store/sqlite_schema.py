"""SQLite schema migrations, in order. ``PRAGMA user_version`` is the number applied.

Never edit a migration that has shipped: append a new one.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: incidents, timeline, outbox, counters, GitHub issue records
    """
    CREATE TABLE counters (
        name  TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    );
    CREATE TABLE incidents (
        id          INTEGER PRIMARY KEY,
        key         TEXT NOT NULL,
        kind        TEXT NOT NULL,
        number      INTEGER NOT NULL,
        state       TEXT NOT NULL,
        priority    TEXT NOT NULL,
        opened_at   REAL NOT NULL,
        resolved_at REAL,
        data        TEXT NOT NULL,
        updated_at  REAL NOT NULL,
        UNIQUE (kind, number)
    );
    CREATE INDEX incidents_by_key ON incidents (key, id);
    CREATE INDEX incidents_by_state ON incidents (state, priority);
    CREATE TABLE events (
        incident_id INTEGER NOT NULL REFERENCES incidents (id),
        seq         INTEGER NOT NULL,
        at          TEXT NOT NULL,
        kind        TEXT NOT NULL,
        text        TEXT NOT NULL,
        data        TEXT NOT NULL,
        PRIMARY KEY (incident_id, seq)
    ) WITHOUT ROWID;
    CREATE TABLE outbox (
        id              INTEGER PRIMARY KEY,
        incident_id     INTEGER NOT NULL REFERENCES incidents (id),
        kind            TEXT NOT NULL,
        payload         TEXT NOT NULL,
        state           TEXT NOT NULL,          -- pending | running | done | failed
        attempts        INTEGER NOT NULL DEFAULT 0,
        claim           INTEGER NOT NULL DEFAULT 0,  -- fencing token, bumped by every claim
        outcome_unknown INTEGER NOT NULL DEFAULT 0,
        created_at      REAL NOT NULL,
        next_attempt_at REAL NOT NULL,
        lease_until     REAL,
        finished_at     REAL,
        last_error      TEXT
    );
    CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE state = 'pending';
    CREATE INDEX outbox_active ON outbox (incident_id, id) WHERE state IN ('pending', 'running');
    CREATE INDEX outbox_leases ON outbox (lease_until) WHERE state = 'running';
    CREATE TABLE github_issues (
        incident_id INTEGER NOT NULL REFERENCES incidents (id),
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
    ) WITHOUT ROWID;
    """,
    # 2: what store.retention prunes, found by index rather than by a scan
    """
    CREATE INDEX incidents_resolved ON incidents (resolved_at) WHERE state != 'open';
    CREATE INDEX outbox_finished ON outbox (finished_at) WHERE state IN ('done', 'failed');
    """,
    # 3: P0/P1 effects claimed first; the GitHub writer lease and write budget (shared state)
    """
    ALTER TABLE outbox ADD COLUMN urgent INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX outbox_due_urgent ON outbox (urgent DESC, next_attempt_at, id)
        WHERE state = 'pending';
    CREATE TABLE leases (
        name   TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        until  REAL NOT NULL
    );
    CREATE TABLE github_writes (at REAL NOT NULL);
    CREATE INDEX github_writes_at ON github_writes (at);
    CREATE TABLE github_budget (
        name       TEXT PRIMARY KEY,
        factor     REAL NOT NULL,
        changed_at REAL NOT NULL
    );
    """,
    # 4: storm mode: the roll-up of a storm (an incidents row of kind 'storm') and what it lists
    """
    CREATE TABLE storms (
        incident_id  INTEGER PRIMARY KEY REFERENCES incidents (id),
        edited_at    REAL,
        over_at      REAL,
        announced_at REAL
    );
    CREATE INDEX storms_active ON storms (incident_id) WHERE over_at IS NULL;
    CREATE TABLE storm_members (
        incident_id INTEGER PRIMARY KEY REFERENCES incidents (id),
        storm_id    INTEGER NOT NULL REFERENCES incidents (id),
        joined_at   REAL NOT NULL
    );
    CREATE INDEX storm_members_by_storm ON storm_members (storm_id);
    """,
    # 5: outbox lanes: GitHub and each notification channel claim their own effects, so one
    # channel down never delays another
    """
    ALTER TABLE outbox ADD COLUMN lane TEXT NOT NULL DEFAULT 'github';
    CREATE INDEX outbox_lane_due ON outbox (lane, urgent DESC, next_attempt_at, id)
        WHERE state = 'pending';
    CREATE INDEX outbox_lane_active ON outbox (incident_id, lane, id)
        WHERE state IN ('pending', 'running');
    """,
    # 6: what a notification channel keeps per incident (Slack's root message)
    """
    CREATE TABLE notify_state (
        incident_id INTEGER NOT NULL REFERENCES incidents (id),
        channel     TEXT NOT NULL,
        data        TEXT NOT NULL,
        PRIMARY KEY (incident_id, channel)
    ) WITHOUT ROWID;
    """,
    # 7: storm control per person and channel: what was sent (the window's count) and what was
    # held for a bundle (the outbox effect that will tell it, ``bundle_id``)
    """
    CREATE TABLE notify_log (
        channel   TEXT NOT NULL,
        recipient TEXT NOT NULL,
        effect_id INTEGER NOT NULL,
        at        REAL NOT NULL,
        PRIMARY KEY (channel, recipient, effect_id)
    ) WITHOUT ROWID;
    CREATE INDEX notify_log_at ON notify_log (channel, recipient, at);
    CREATE TABLE notify_held (
        effect_id   INTEGER PRIMARY KEY,
        channel     TEXT NOT NULL,
        recipient   TEXT NOT NULL,
        incident_id INTEGER NOT NULL REFERENCES incidents (id),
        event_seq   INTEGER NOT NULL,
        bundle_id   INTEGER NOT NULL,
        held_at     REAL NOT NULL
    );
    CREATE INDEX notify_held_by_person ON notify_held (channel, recipient, bundle_id);
    CREATE INDEX notify_held_by_bundle ON notify_held (bundle_id);
    """,
    # 8: the on-call lifecycle: an incident's next timer (``Incident.due_at``), found by index;
    # named marks (the heartbeat's last Watchdog); GitHub webhook deliveries seen (replays)
    """
    ALTER TABLE incidents ADD COLUMN due_at REAL;
    CREATE INDEX incidents_due ON incidents (due_at) WHERE due_at IS NOT NULL;
    CREATE TABLE marks (
        name TEXT PRIMARY KEY,
        at   REAL NOT NULL
    );
    CREATE TABLE github_deliveries (
        id TEXT PRIMARY KEY,
        at REAL NOT NULL
    );
    CREATE INDEX github_deliveries_at ON github_deliveries (at);
    """,
    # 9: storm control's bundles stand apart from their incident's order: a bundle tells a
    # person about several incidents, so it neither waits for nor holds back the messages of the
    # incident it was queued on (the claims' oldest-unfinished rule skips it both ways)
    """
    ALTER TABLE outbox ADD COLUMN bundle INTEGER NOT NULL DEFAULT 0;
    UPDATE outbox SET bundle = 1 WHERE id IN (SELECT bundle_id FROM notify_held);
    """,
    # 10: whom a message is for (email address, phone number; '' for GitHub and Slack): an
    # incident's effects run in order per lane and recipient, so one person's mailbox failing
    # never holds back another person's message about the same incident
    """
    ALTER TABLE outbox ADD COLUMN recipient TEXT NOT NULL DEFAULT '';
    UPDATE outbox SET recipient = coalesce(json_extract(payload, '$.to'), '')
        WHERE lane IN ('email', 'sms') AND state IN ('pending', 'running');
    """,
    # 11: post-incident reviews (bridge/review.py): when each review's one reminder is due (NULL:
    # none pending) and when it was queued; kept per review, not on the incident, so a review
    # is reminded of even after a newer incident of its alert group took the identity
    """
    CREATE TABLE reviews (
        incident_id INTEGER PRIMARY KEY REFERENCES incidents (id),
        due_at      REAL,
        reminded_at REAL
    );
    CREATE INDEX reviews_due ON reviews (due_at) WHERE due_at IS NOT NULL;
    """,
    # 12: three outbox indexes no query needs any more (each write of an effect kept them up to
    # date): the lanes' indexes (5) serve what the first outbox indexes and urgency's (3) did;
    # and the incident of a GitHub issue number (every GitHub event asks) found by index, not
    # by reading every issue record
    """
    DROP INDEX outbox_due;
    DROP INDEX outbox_active;
    DROP INDEX outbox_due_urgent;
    CREATE INDEX github_issues_by_number ON github_issues (repository, number);
    """,
)
