-- evstore schema, migration 8 (issue 10): per-subject data keys, the blind
-- index, the tombstone of forgotten subjects, and forget requests.
-- {schema} is replaced with the quoted schema name (EVENT_STORE_SCHEMA).
-- A subject is never stored by its id here: key_ref / subject_ref are keyed
-- HMACs of it (core/privacy/crypto.py), meaningless without the secret key.

-- One data key per subject, wrapped by a master key (envelope encryption).
-- With EVENT_STORE_KEYS_URL the same table lives in that other database and
-- this one stays empty. Forgetting a subject deletes its row.
CREATE TABLE {schema}.subject_keys (
    key_ref      text        PRIMARY KEY,
    master_kid   text        NOT NULL,
    wrapped_key  bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    rewrapped_at timestamptz
);

-- Keyed equality index of declared fields: HMAC(field, value) -> event.
CREATE TABLE {schema}.blind_index (
    field        text        NOT NULL,
    digest       text        NOT NULL,
    subject_ref  text        NOT NULL,
    event_id     uuid        NOT NULL,
    PRIMARY KEY (field, digest, event_id)
);
CREATE INDEX blind_index_subject_idx ON {schema}.blind_index (subject_ref);

-- Subjects forgotten: a restore or an import anonymizes their events.
CREATE TABLE {schema}.forgotten_subjects (
    subject_ref  text        PRIMARY KEY,
    forgotten_at timestamptz NOT NULL DEFAULT now(),
    job_id       bigint
);

-- The audit of each forget: counts, who, when; no personal data.
CREATE TABLE {schema}.forget_requests (
    request_id   bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subject_ref  text        NOT NULL,
    job_id       bigint,
    requested_by text        NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    counts       jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX forget_requests_subject_idx ON {schema}.forget_requests (subject_ref);
