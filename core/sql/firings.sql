-- Named queries of the scheduler's firings (evstore.core.jobs.firings).
-- {schema} is the quoted schema; %(name)s are psycopg parameters.
--
-- One row per (policy, scheduled time): the replica whose INSERT creates it
-- enqueues the job; every other replica's insert does nothing.

-- name: claim_firing
INSERT INTO {schema}.schedule_firings (policy, scheduled_for, replica)
VALUES (%(policy)s, %(scheduled_for)s, %(replica)s)
ON CONFLICT (policy, scheduled_for) DO NOTHING RETURNING 1;

-- name: record_firing
UPDATE {schema}.schedule_firings SET status = %(status)s, job_kind = %(job_kind)s,
       job_id = %(job_id)s, detail = %(detail)s
 WHERE policy = %(policy)s AND scheduled_for = %(scheduled_for)s;

-- name: last_firings
SELECT DISTINCT ON (policy) policy, scheduled_for, fired_at, replica, job_kind, job_id, status, detail
  FROM {schema}.schedule_firings
 ORDER BY policy, scheduled_for DESC;

-- name: list_firings
SELECT policy, scheduled_for, fired_at, replica, job_kind, job_id, status, detail
  FROM {schema}.schedule_firings
 WHERE (%(policy)s::text IS NULL OR policy = %(policy)s)
 ORDER BY scheduled_for DESC
 LIMIT %(limit)s;
