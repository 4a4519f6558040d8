-- Named queries of the job engine (evstore.core.jobs: repository, batch_runs, claims, metrics).
-- {schema} is the quoted schema; %(name)s are psycopg parameters.
--
-- Times are clock_timestamp(), not now(): a batch's outcome is written at the end
-- of a transaction that began when the batch did.
--
-- Lock order, everywhere: batch rows first, then the job row. Whoever holds a
-- job row's lock (refresh_job) waits for nothing else, so no cycle can form.

-- name: insert_job
INSERT INTO {schema}.jobs (kind, params, created_by, items_total, batches_total)
VALUES (%(kind)s, %(params)s, %(created_by)s, %(items_total)s, %(batches_total)s)
RETURNING job_id;

-- name: insert_batch
INSERT INTO {schema}.job_batches (job_id, number, params, label, items_total)
VALUES (%(job_id)s, %(number)s, %(params)s, %(label)s, %(items_total)s);

-- name: delete_job
DELETE FROM {schema}.jobs WHERE job_id = %(job_id)s;

-- name: get_job
SELECT job_id, kind, params, status, created_by, items_total, items_done, items_failed,
       batches_total, batches_succeeded, batches_failed, batches_running, batches_cancelled,
       created_at, started_at, finished_at, cancel_requested_at, updated_at
  FROM {schema}.jobs WHERE job_id = %(job_id)s;

-- name: job_by_creator
-- The job a scheduler firing started (created_by names the firing), if any.
SELECT job_id FROM {schema}.jobs WHERE created_by = %(created_by)s ORDER BY job_id LIMIT 1;

-- name: list_jobs
SELECT job_id, kind, params, status, created_by, items_total, items_done, items_failed,
       batches_total, batches_succeeded, batches_failed, batches_running, batches_cancelled,
       created_at, started_at, finished_at, cancel_requested_at, updated_at
  FROM {schema}.jobs
 WHERE (%(status)s::text IS NULL OR status = %(status)s)
   AND (%(kind)s::text IS NULL OR kind = %(kind)s)
 ORDER BY job_id DESC
 LIMIT %(limit)s;

-- name: list_batches
SELECT job_id, number, params, label, items_total, items_done, status, attempts, worker,
       details, last_error, error_item, error_traceback, queued_at, started_at, finished_at
  FROM {schema}.job_batches WHERE job_id = %(job_id)s ORDER BY number;

-- name: list_errors
SELECT job_id, number, attempt, final, worker, error, item, traceback, occurred_at
  FROM {schema}.job_errors WHERE job_id = %(job_id)s ORDER BY id;

-- name: lock_job
SELECT status FROM {schema}.jobs WHERE job_id = %(job_id)s FOR UPDATE;

-- name: refresh_job
-- Status and counts derived from the batches. Run after lock_job in the same
-- transaction: under READ COMMITTED this statement's snapshot is taken after
-- the lock was granted, so it sees every batch outcome committed before it.
WITH b AS (
    SELECT count(*)                                                   AS total,
           count(*) FILTER (WHERE status = 'succeeded')               AS succeeded,
           count(*) FILTER (WHERE status = 'failed')                  AS failed,
           count(*) FILTER (WHERE status = 'running')                 AS running,
           count(*) FILTER (WHERE status = 'cancelled')               AS cancelled,
           count(*) FILTER (WHERE status = 'pending')                 AS pending,
           count(*) FILTER (WHERE status IN ('queued', 'running', 'retrying')) AS active,
           coalesce(sum(items_done) FILTER (WHERE status = 'succeeded'), 0)  AS done,
           coalesce(sum(items_total) FILTER (WHERE status = 'failed'), 0)    AS failed_items,
           min(started_at)                                            AS first_start
      FROM {schema}.job_batches WHERE job_id = %(job_id)s
)
UPDATE {schema}.jobs j
   SET batches_total = b.total, batches_succeeded = b.succeeded, batches_failed = b.failed,
       batches_running = b.running, batches_cancelled = b.cancelled,
       items_done = b.done, items_failed = b.failed_items,
       started_at = coalesce(j.started_at, b.first_start),
       status = CASE
           WHEN b.active = 0 AND b.pending > 0 AND b.succeeded + b.failed = 0
                AND j.cancel_requested_at IS NULL THEN 'starting'
           WHEN b.active + b.pending > 0 AND j.cancel_requested_at IS NOT NULL THEN 'cancelling'
           WHEN b.active + b.pending > 0 AND b.first_start IS NOT NULL THEN 'running'
           WHEN b.active + b.pending > 0 THEN 'queued'
           WHEN b.failed > 0 THEN 'failed'
           WHEN b.cancelled > 0 THEN 'cancelled'
           ELSE 'succeeded'
       END,
       finished_at = CASE WHEN b.active + b.pending = 0 THEN coalesce(j.finished_at, clock_timestamp()) END,
       updated_at = clock_timestamp()
  FROM b
 WHERE j.job_id = %(job_id)s
RETURNING j.status;

-- name: select_for_queue
-- Batches to (re)send, locked until the messages are out and the rows say 'queued'.
SELECT number FROM {schema}.job_batches
 WHERE job_id = %(job_id)s AND status = ANY(%(statuses)s)
   AND (%(number)s::integer IS NULL OR number = %(number)s)
 ORDER BY number
   FOR UPDATE SKIP LOCKED;

-- name: mark_queued
UPDATE {schema}.job_batches
   SET status = 'queued', queued_at = clock_timestamp(), finished_at = NULL
 WHERE job_id = %(job_id)s AND number = ANY(%(numbers)s);

-- name: clear_cancel
UPDATE {schema}.jobs SET cancel_requested_at = NULL WHERE job_id = %(job_id)s;

-- name: cancel_batches
UPDATE {schema}.job_batches
   SET status = 'cancelled', finished_at = clock_timestamp()
 WHERE job_id = %(job_id)s AND status IN ('pending', 'queued', 'retrying')
RETURNING number;

-- name: request_cancel
UPDATE {schema}.jobs SET cancel_requested_at = coalesce(cancel_requested_at, clock_timestamp())
 WHERE job_id = %(job_id)s;

-- name: running_batches
-- Candidates for the orphan sweep: rows not being changed right now.
SELECT job_id, number FROM {schema}.job_batches
 WHERE status = 'running'
 ORDER BY job_id, number
   FOR UPDATE SKIP LOCKED;

-- name: stale_retrying_batches
-- Candidates for the stale-retry sweep: batches 'retrying' whose retry is overdue
-- ({overdue}: the block retry_overdue below).
SELECT b.job_id, b.number FROM {schema}.job_batches b
 WHERE b.status = 'retrying' AND {overdue}
 ORDER BY b.job_id, b.number;

-- name: lock_stale_retrying
-- One candidate, locked and checked again (it may have moved on since).
SELECT b.attempts FROM {schema}.job_batches b
 WHERE b.job_id = %(job_id)s AND b.number = %(number)s AND b.status = 'retrying'
   AND {overdue}
   FOR UPDATE OF b SKIP LOCKED;

-- name: retry_overdue
-- A batch b whose last failed attempt ended more than due_after seconds ago (its
-- retry should have run). Filled into the two blocks above ({overdue}).
coalesce((SELECT max(e.occurred_at) FROM {schema}.job_errors e
           WHERE e.job_id = b.job_id AND e.number = b.number AND e.attempt = b.attempts),
         b.started_at, b.queued_at)
    < clock_timestamp() - make_interval(secs => %(due_after)s)

-- name: try_claim
-- A session lock held by the process running a batch for the whole run; a
-- batch 'running' whose lock is free has lost its runner (killed worker).
SELECT pg_try_advisory_lock(hashtextextended(%(key)s, 0));

-- name: probe_claim
-- Is the batch's claim free (its runner gone)? Taken and released at once: a
-- worker that receives the batch's message before our transaction commits must
-- find the claim free (it waits on the batch row's lock instead), or it would
-- drop the only message of a batch we are about to mark 'queued'.
SELECT CASE WHEN pg_try_advisory_lock(hashtextextended(%(key)s, 0))
            THEN pg_advisory_unlock(hashtextextended(%(key)s, 0))
            ELSE false END;

-- name: release_claim
SELECT pg_advisory_unlock(hashtextextended(%(key)s, 0));

-- name: lock_batch
SELECT 1 FROM {schema}.job_batches
 WHERE job_id = %(job_id)s AND number = %(number)s FOR UPDATE;

-- name: start_batch
UPDATE {schema}.job_batches
   SET status = 'running', attempts = attempts + 1, worker = %(worker)s,
       started_at = clock_timestamp(), finished_at = NULL
 WHERE job_id = %(job_id)s AND number = %(number)s
   AND status IN ('queued', 'retrying', 'running')
RETURNING attempts, params, label, items_total;

-- name: batch_state
SELECT b.status, b.attempts, j.kind, j.params, j.status
  FROM {schema}.job_batches b JOIN {schema}.jobs j USING (job_id)
 WHERE b.job_id = %(job_id)s AND b.number = %(number)s;

-- name: verify_running
SELECT status, attempts FROM {schema}.job_batches
 WHERE job_id = %(job_id)s AND number = %(number)s
   FOR UPDATE;

-- name: complete_batch
UPDATE {schema}.job_batches
   SET status = 'succeeded', items_done = %(items_done)s, details = %(details)s,
       last_error = NULL, error_item = NULL, error_traceback = NULL, finished_at = clock_timestamp()
 WHERE job_id = %(job_id)s AND number = %(number)s
   AND status = 'running' AND attempts = %(attempt)s;

-- name: record_error
INSERT INTO {schema}.job_errors (job_id, number, attempt, final, worker, error, item, traceback)
VALUES (%(job_id)s, %(number)s, %(attempt)s, %(final)s, %(worker)s, %(error)s, %(item)s,
        %(traceback)s);

-- name: attempt_failed
-- The attempt failed; Dramatiq's Retries decides whether another one comes.
UPDATE {schema}.job_batches
   SET status = 'retrying', last_error = %(error)s, error_item = %(item)s,
       error_traceback = %(traceback)s
 WHERE job_id = %(job_id)s AND number = %(number)s
   AND status = 'running' AND attempts = %(attempt)s;

-- name: batch_failed
-- Retries are exhausted (or the error is not retried): the batch is failed
-- until an operator requeues it. 'queued': every delivery failed before its
-- start committed (BatchStartLost, the database refusing the start); left
-- 'queued', the batch would have no message and its job would never end.
UPDATE {schema}.job_batches
   SET status = 'failed', finished_at = clock_timestamp(),
       last_error = coalesce(%(error)s, last_error),
       error_item = coalesce(%(item)s, error_item),
       error_traceback = coalesce(%(traceback)s, error_traceback)
 WHERE job_id = %(job_id)s AND number = %(number)s
   AND status IN ('queued', 'running', 'retrying') AND attempts = %(attempt)s
RETURNING number;

-- name: mark_final_error
UPDATE {schema}.job_errors SET final = true
 WHERE id = (SELECT max(id) FROM {schema}.job_errors
              WHERE job_id = %(job_id)s AND number = %(number)s AND attempt = %(attempt)s);

-- name: job_counts
SELECT kind, status, count(*) FROM {schema}.jobs GROUP BY kind, status;

-- name: batch_counts
SELECT j.kind, b.status, count(*), coalesce(sum(b.items_done), 0)
  FROM {schema}.job_batches b JOIN {schema}.jobs j USING (job_id)
 GROUP BY j.kind, b.status;

-- name: error_counts
SELECT j.kind, count(*) FROM {schema}.job_errors e JOIN {schema}.jobs j USING (job_id)
 GROUP BY j.kind;
