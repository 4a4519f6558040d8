"""What the replay example's worker processes import (EVSTORE_HANDLER_MODULES): the example's
own handler, registered for the event type the example registers it for."""

from __future__ import annotations

from evstore.workers import register_event_handler

from tests.spec.test_replay import handle_user_event

register_event_handler("UserCreated", handle_user_event)
