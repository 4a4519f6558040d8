-- Named queries of the scheduler's firings (evstore.core.jobs.firings).
-- {schema} is the quoted schema; %(name)s are psycopg parameters.
--
-- One row per (policy, scheduled time): the replica whose INSERT creates it
-- enqueues the job; every other replica's insert does nothing. A row still
-- 'claimed' with no job after a grace period lost its replica (killed between
-- claim and enqueue): one surviving replica takes it over (take_over_firing,
-- a conditional UPDATE: the row lock lets one win) and enqueues it.

-- name: claim_firing
INSERT INTO {schema}.schedule_firings (policy, scheduled_for, replica)
VALUES (%(policy)s, %(scheduled_for)s, %(replica)s)
ON CONFLICT (policy, scheduled_for) DO NOTHING RETURNING 1;

-- name: record_firing
-- Only by the replica that holds the claim (NULL: whoever), and only once.
UPDATE {schema}.schedule_firings SET status = %(status)s, job_kind = %(job_kind)s,
       job_id = %(job_id)s, detail = coalesce(%(detail)s, detail)
 WHERE policy = %(policy)s AND scheduled_for = %(scheduled_for)s
   AND (%(replica)s::text IS NULL OR (replica = %(replica)s AND status = 'claimed'))
RETURNING 1;

-- name: stale_claims
SELECT policy, scheduled_for
  FROM {schema}.schedule_firings
 WHERE status = 'claimed' AND job_id IS NULL AND policy = ANY(%(policies)s)
   AND fired_at < now() - make_interval(secs => %(grace)s)
 ORDER BY scheduled_for;

-- name: take_over_firing
-- The row lock of the UPDATE makes a second taker wait, then re-check the
-- WHERE against the new fired_at: it no longer matches, so one replica wins.
UPDATE {schema}.schedule_firings
   SET replica = %(replica)s, fired_at = now(), detail = 'taken over from ' || replica
 WHERE policy = %(policy)s AND scheduled_for = %(scheduled_for)s
   AND status = 'claimed' AND job_id IS NULL
   AND fired_at < now() - make_interval(secs => %(grace)s)
RETURNING detail;

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
