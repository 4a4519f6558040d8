-- evstore schema, migration 10 (issue 11): the access log in the spec's shape,
-- hash-chained; legal holds; consent.
-- {schema} is replaced with the quoted schema name (EVENT_STORE_SCHEMA).
--
-- 1. event_access_log takes the spec's columns. The old ones keep their data
--    under the spec's names (action -> access_type, occurred_at -> accessed_at);
--    subject_id and details stay. One row is one access (one read call): the
--    spec's event_id / aggregate_id are set when the access returned one event /
--    one aggregate; event_ids and subject_ids list every personal event and
--    subject it returned. seq and chain_hash make the rows a hash chain: each
--    row's chain_hash is "<key id>:<HMAC-SHA256 over the previous row's hash and
--    this row's canonical content>", keyed by the project secret (core/keys.py,
--    purpose "access-log-chain"); the database never holds the key. Rows made
--    before this migration have no seq yet: the first writer chains them (in id
--    order) before its own rows.
-- 2. event_access_log_head: the end of the chain (one row), locked by writers
--    so rows are chained one writer at a time, and checked by verify-log so a
--    row removed from the end is caught too.
-- 3. legal_holds: a held subject cannot be forgotten, and a retention run does
--    not drop a month partition holding its events.
-- 4. subject_consents: consent given or withdrawn per subject and purpose;
--    the newest row of a (subject, purpose) is its state.

ALTER TABLE {schema}.event_access_log RENAME COLUMN action TO access_type;
ALTER TABLE {schema}.event_access_log RENAME COLUMN occurred_at TO accessed_at;
ALTER TABLE {schema}.event_access_log
    ADD COLUMN access_id    uuid   NOT NULL DEFAULT gen_random_uuid(),
    ADD COLUMN event_id     uuid,
    ADD COLUMN aggregate_id text,
    ADD COLUMN event_ids    uuid[] NOT NULL DEFAULT '{}',
    ADD COLUMN subject_ids  text[] NOT NULL DEFAULT '{}',
    ADD COLUMN ip_address   inet,
    ADD COLUMN user_agent   text,
    ADD COLUMN seq          bigint,
    ADD COLUMN chain_hash   text;
CREATE UNIQUE INDEX event_access_log_seq_idx ON {schema}.event_access_log (seq);
CREATE UNIQUE INDEX event_access_log_access_id_idx ON {schema}.event_access_log (access_id);
CREATE INDEX event_access_log_subjects_idx ON {schema}.event_access_log USING gin (subject_ids);
CREATE INDEX event_access_log_event_idx ON {schema}.event_access_log (event_id);

CREATE TABLE {schema}.event_access_log_head (
    singleton   boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    seq         bigint      NOT NULL DEFAULT 0,
    chain_hash  text        NOT NULL DEFAULT '',
    head_mac    text        NOT NULL DEFAULT '',
    updated_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO {schema}.event_access_log_head (singleton) VALUES (true);

CREATE TABLE {schema}.legal_holds (
    hold_id      bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subject_id   text        NOT NULL,
    reason       text        NOT NULL,
    placed_by    text        NOT NULL,
    placed_at    timestamptz NOT NULL DEFAULT now(),
    released_by  text,
    released_at  timestamptz
);
CREATE UNIQUE INDEX legal_holds_active_idx ON {schema}.legal_holds (subject_id)
    WHERE released_at IS NULL;

CREATE TABLE {schema}.subject_consents (
    consent_id   bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subject_id   text        NOT NULL,
    purpose      text        NOT NULL,
    granted      boolean     NOT NULL,
    recorded_by  text        NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    note         text
);
CREATE INDEX subject_consents_idx ON {schema}.subject_consents (subject_id, purpose, consent_id DESC);
CREATE INDEX subject_consents_purpose_idx ON {schema}.subject_consents (purpose, consent_id DESC);
