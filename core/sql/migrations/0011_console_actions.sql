-- evstore schema, migration 11: the web console's record of operator actions (issue 16).
-- {schema} is replaced with the quoted schema name (EVENT_STORE_SCHEMA).

-- One row per action an operator took in the console (requeue, cancel, reset,
-- restore, login, refused attempts): who, what, on what, when, and the outcome.
-- Never a stream id or any event data (they may carry personal data).
CREATE TABLE {schema}.console_actions (
    action_id   bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    operator    text        NOT NULL,
    action      text        NOT NULL,
    target      text        NOT NULL DEFAULT '',
    outcome     text        NOT NULL,
    detail      text        NOT NULL DEFAULT '',
    client      text        NOT NULL DEFAULT ''
);
CREATE INDEX console_actions_time_idx ON {schema}.console_actions (occurred_at DESC);
