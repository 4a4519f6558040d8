"""A replay handler of the access-log tests (imported by the workers through
EVSTORE_HANDLER_MODULES): records what each event's e-mail looked like when delivered."""

from __future__ import annotations

from evstore.workers import register_event_handler

from tests.integration.privacy_log.helpers import PROFILE  # declares the personal data here too

SEEN_DDL = """CREATE TABLE IF NOT EXISTS public.p2_seen (
    job_id bigint NOT NULL, event_id uuid NOT NULL, user_id text, email text)"""


def p2_seen(event, ctx) -> None:  # type: ignore[no-untyped-def]
    ctx.connection.execute(
        "INSERT INTO public.p2_seen (job_id, event_id, user_id, email) VALUES (%s, %s, %s, %s)",
        (ctx.job_id, event.event_id, event.metadata.user_id, event.event_data.get("email")))


register_event_handler(PROFILE, p2_seen)
