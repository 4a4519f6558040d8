"""The console's state and rules: pages (GET, no login) and actions (POST, an operator).

Actions call exactly what the CLI calls: ``evstore jobs requeue`` ->
``JobEngine.requeue``, ``evstore jobs cancel`` -> ``JobRepository.cancel``,
``evstore consumers reset`` -> ``CheckpointStore.reset`` (never ``force``: only
a stopped group), ``evstore archive restore`` -> ``restore_archive``. Every
action, refused ones included, is a row of ``console_actions``.

Stream ids may carry personal data (``User-ada@example.com``), so they never
travel in a URL: a lookup is a POST, and the stream's pages are addressed by
an opaque random token that maps to the stream id in this process only.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from evstore.core.config import Settings
from evstore.core.errors import EventStoreError

from . import data
from .auth import COOKIE, SESSION_SECONDS, Authenticator, Session

HERE = Path(__file__).parent
PAGE_SIZE = 50
MAX_STREAM_TOKENS = 10_000


class Console:
    """The state behind the pages: settings, one store (opened on first use), sessions."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.auth = Authenticator()
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self._store: Any = None
        self._lock = threading.Lock()
        self._streams: OrderedDict[str, str] = OrderedDict()

    @property
    def store(self) -> Any:
        with self._lock:
            if self._store is None:
                from evstore.core.store.postgres import PostgreSQLEventStore

                self._store = PostgreSQLEventStore(self.settings.database_url, settings=self.settings)
            return self._store

    @contextlib.contextmanager
    def broker(self) -> Iterator[Any]:
        from evstore.workers.broker import close_broker, make_broker, redis_url

        with redis_url(self.settings) as url:
            broker = make_broker(url)
            try:
                yield broker
            finally:
                close_broker(broker)

    # -- stream tokens: no stream id in a URL -----------------------------------

    def token_for(self, stream_id: str) -> str:
        with self._lock:
            for token, known in self._streams.items():
                if known == stream_id:
                    return token
            token = secrets.token_urlsafe(12)
            self._streams[token] = stream_id
            while len(self._streams) > MAX_STREAM_TOKENS:
                self._streams.popitem(last=False)
            return token

    def stream_of(self, token: str) -> str | None:
        with self._lock:
            return self._streams.get(token)

    # -- responses ---------------------------------------------------------------

    def session(self, request: Request) -> Session:
        if "console_session" not in request.scope:
            request.scope["console_session"] = self.auth.load(request.cookies.get(COOKIE))
        session: Session = request.scope["console_session"]
        return session

    def finish(self, request: Request, response: Response) -> Response:
        session = self.session(request)
        if session.new:
            response.set_cookie(COOKIE, self.auth.dump(session), max_age=SESSION_SECONDS, path="/",
                                httponly=True, samesite="strict", secure=request.url.scheme == "https")
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    def page(self, request: Request, template: str, status: int = 200, **context: Any) -> Response:
        session = self.session(request)
        context.update(operator=session.operator, csrf=session.csrf, can_login=self.auth.enabled)
        response = self.templates.TemplateResponse(request, template, context, status_code=status)
        return self.finish(request, response)

    def message(self, request: Request, title: str, text: str, status: int) -> Response:
        return self.page(request, "message.html", status=status, title=title, text=text)

    def record(self, request: Request, operator: str, action: str, target: str, outcome: str,
               detail: str = "") -> None:
        client = request.client.host if request.client else ""
        data.record_action(self.store, operator, action, target, outcome, detail, client)

    async def act(
        self, request: Request, action: str, target: str, run: Callable[[dict[str, str]], str],
        back: str,
    ) -> Response:
        """An action: CSRF token and operator checked (refusals recorded), then ``run``."""
        from starlette.concurrency import run_in_threadpool

        form = {k: str(v) for k, v in (await request.form()).items()}
        session = self.session(request)
        who = session.operator or "anonymous"
        if not self.auth.csrf_ok(session, form.get("csrf_token")):
            await run_in_threadpool(self.record, request, who, action, target, "refused",
                                    "missing or wrong CSRF token")
            return self.message(request, "Refused", "The form's CSRF token is missing or wrong: "
                                "reload the page and try again.", 403)
        if session.operator is None:
            await run_in_threadpool(self.record, request, who, action, target, "refused",
                                    "not logged in")
            return self.message(request, "Login needed",
                                "Only a logged-in operator can do this: log in first.", 403)
        try:
            detail = await run_in_threadpool(run, form)
        except (EventStoreError, ValueError) as exc:
            await run_in_threadpool(self.record, request, who, action, target, "failed", str(exc))
            return self.message(request, f"{action} failed", str(exc), 409)
        await run_in_threadpool(self.record, request, who, action, target, "done", detail)
        return self.finish(request, RedirectResponse(back, status_code=303))


def not_found(console: Console, request: Request, what: str) -> Response:
    return console.message(request, "Not found", what, 404)


