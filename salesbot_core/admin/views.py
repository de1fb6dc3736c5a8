"""The admin page's routes: sign-in, sessions, CSRF and the pages themselves."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, pass_context, select_autoescape
from starlette.concurrency import run_in_threadpool

from ..engine import Engine
from ..errors import RulesetError
from ..models import ENTITIES, Token, utc_iso
from ..replay import parse_moment, read_window, replay_files
from ..tokens import ADMIN_ACCOUNT, authenticate
from . import editing, reads, sessions

T = TypeVar("T")

HERE = Path(__file__).parent
#: Where the page's own CSS and JavaScript are served from.
STATIC = "/admin-static"
#: The page's headers: only its own scripts and styles, no framing, nothing cached.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
#: The biggest form the page takes (a sign-in, a switch, a dry run): bytes.
MAX_FORM_BYTES = 8 * 1024
#: The biggest replay form: candidate rules pasted as one ruleset file (its own limit,
#: ``rulesets.MAX_FILE_BYTES``, is checked too).
MAX_REPLAY_FORM_BYTES = 1024 * 1024
#: The windows of history the replay form offers, newest events last.
REPLAY_WINDOWS = ("1d", "7d", "30d", "90d")
#: What the candidate rules are called in an error (file, bot, field).
CANDIDATE_FILE = "candidate.yaml"
#: The calendar periods of the totals per user, as the page heads them.
PERIODS = {"day": "Today", "week": "This week", "month": "This month"}
#: Seconds between two refreshes of the live feed (the page's JavaScript polls).
LIVE_SECONDS = 3


class PageError(Exception):
    """A page answered with an error page: 403, 404, 413, ..."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class SignInNeeded(Exception):
    """No valid session: the browser is sent to the sign-in form."""


@dataclass(frozen=True)
class Viewer:
    """The signed-in token and its session."""

    token: Token
    session: sessions.Session

    @property
    def admin(self) -> bool:
        return self.token.account == ADMIN_ACCOUNT

    @property
    def who(self) -> str:
        """How a switch records who did it."""
        return f"token {self.token.account}/{self.token.name}"


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["q"] = lambda value: quote(str(value), safe="")
    # Conditions and strategy states as written (JSON); autoescaped like any text.
    env.filters["json"] = lambda value: json.dumps(value, ensure_ascii=False)
    env.filters["words"] = words
    env.filters["user_name"] = pass_context(lambda context, user: _named(context, "users", user))
    env.filters["bot_name"] = pass_context(lambda context, bot: _named(context, "bots", bot))
    return env


def words(name: object) -> str:
    """An id as words: ``not_applied`` reads "not applied", a strategy ``least_loaded``
    "least loaded". Statuses and the plugins' strategy ids alike, so the page needs no
    list of either (the id stays in the element's ``data-*`` attribute)."""
    return str(name).replace("_", " ")


def _named(context: Mapping[str, Any], kind: str, entry_id: object) -> str:
    """A user's or bot's name by its id, from the account's ``names`` (the id itself on
    pages without an account, or for an id the rules no longer know)."""
    known: reads.Names = context.get("names") or reads.Names()
    return getattr(known, kind).get(str(entry_id), str(entry_id))


def _live_token(engine: Engine, session: sessions.Session) -> Token | None:
    """The session's token if the session was not signed out and the token is still live
    and may manage (revoked: the session ends)."""
    if engine.store.session_ended(session.nonce):
        return None
    for token in engine.store.tokens(session.account):
        if token.name == session.name and token.revoked_at is None and "manage" in token.scopes:
            return token
    return None


def _end_session(engine: Engine, session: sessions.Session) -> None:
    """Sign ``session`` out in the store: every worker refuses its cookie from now on, a
    copy made before included (the cookie itself stays validly signed until it expires)."""
    expires = utc_iso(datetime.fromtimestamp(session.expires, UTC))
    engine.store.end_session(session.nonce, expires, utc_iso(datetime.now(UTC)))


async def _form_values(
    request: Request, limit: int = MAX_FORM_BYTES, max_fields: int = 20
) -> dict[str, list[str]]:
    """A posted form (``application/x-www-form-urlencoded``), at most ``limit`` bytes and
    ``max_fields`` fields: each field's values, in order."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise PageError(413, "the form is too large")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PageError(413, "the form is too large")
    try:
        return parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=max_fields)
    except (UnicodeDecodeError, ValueError):
        raise PageError(400, "the form could not be read") from None


async def _form(request: Request, limit: int = MAX_FORM_BYTES) -> dict[str, str]:
    """A posted form: the first value of each field."""
    return {name: values[0] for name, values in (await _form_values(request, limit)).items()}


def install(app: FastAPI, call: Callable[[Callable[[Engine], Any]], Any], key: bytes) -> None:
    """Add the admin page to ``app``: ``call`` runs a function on the worker's engine
    (``Service.call``); ``key`` signs the sessions (the same in every worker)."""
    env = _environment()
    app.mount(STATIC, StaticFiles(directory=HERE / "static"), name="admin-static")

    def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        session = getattr(request.state, "session", None)
        context.setdefault("viewer", getattr(request.state, "viewer", None))
        context.setdefault("names", getattr(request.state, "names", None))
        csrf = sessions.csrf_token(key, session.nonce) if session else ""
        html = env.get_template(template).render(static=STATIC, csrf=csrf, **context)
        return HTMLResponse(html, status, headers=HEADERS)

    async def viewer(request: Request) -> Viewer:
        session = sessions.read(key, request.cookies.get(sessions.SESSION_COOKIE))
        if session is None:
            raise SignInNeeded()
        token = await call(lambda engine: _live_token(engine, session))
        if token is None:
            raise SignInNeeded()
        request.state.session = session
        request.state.viewer = Viewer(token, session)
        return request.state.viewer

    async def account_viewer(request: Request, account: str) -> Viewer:
        """The viewer, if it may see ``account`` and the account exists: 404 otherwise."""
        seen = await viewer(request)
        known = await call(lambda engine: (reads.accounts(engine), reads.names(engine, account)))
        if account not in known[0] or not (seen.admin or seen.token.account == account):
            raise PageError(404, "not found")
        request.state.names = known[1]
        return seen

    async def checked_values(
        request: Request, limit: int = MAX_FORM_BYTES, max_fields: int = 20
    ) -> dict[str, list[str]]:
        form = await _form_values(request, limit, max_fields)
        session = getattr(request.state, "session", None)
        sent = form.get("csrf") or [""]
        if not sessions.csrf_ok(key, session.nonce if session else None, sent[0]):
            raise PageError(403, "the form's CSRF token is missing or wrong: reload the page and try again")
        return form

    async def checked_form(request: Request, limit: int = MAX_FORM_BYTES) -> dict[str, str]:
        return {name: values[0] for name, values in (await checked_values(request, limit)).items()}

    # Before the bot's page: its route would take /bots/new for a bot called "new".
    editing.install(app, editing.Tools(call, page, account_viewer, checked_values, PageError))

    @app.get("/", include_in_schema=False)
    async def home(request: Request, page_no: int = 1) -> Response:
        seen = await viewer(request)
        everything = await call(reads.accounts)
        shown = everything if seen.admin else [a for a in everything if a == seen.token.account]
        start = (max(page_no, 1) - 1) * reads.PAGE_SIZE
        now = datetime.now(UTC)
        rows = await call(lambda engine: reads.overview(engine, shown[start : start + reads.PAGE_SIZE], now))
        # An account's admin sees only its own files and problems, never the server's folder.
        viewed = None if seen.admin else seen.token.account
        rules = await call(lambda engine: reads.rules_status(engine, viewed))
        return page(
            request,
            "overview.html",
            rows=rows,
            page_no=max(page_no, 1),
            more=start + reads.PAGE_SIZE < len(shown),
            rules=rules,
        )

    @app.get("/signin", include_in_schema=False)
    async def signin_form(request: Request) -> Response:
        return _signin_page(request, "")

    def _signin_page(request: Request, error: str, status: int = 200) -> Response:
        nonce = sessions.signin_nonce()
        html = env.get_template("signin.html").render(
            static=STATIC, csrf=sessions.csrf_token(key, nonce), error=error, viewer=None
        )
        response = HTMLResponse(html, status, headers=HEADERS)
        _cookie(request, response, sessions.SIGNIN_COOKIE, nonce)
        return response

    @app.post("/signin", include_in_schema=False)
    async def signin(request: Request) -> Response:
        form = await _form(request)
        if not sessions.csrf_ok(key, request.cookies.get(sessions.SIGNIN_COOKIE), form.get("csrf")):
            raise PageError(403, "the form's CSRF token is missing or wrong: reload the page and try again")
        secret = form.get("token", "").strip()
        token = await call(lambda engine: authenticate(engine.store, secret))
        if token is None or "manage" not in token.scopes:
            return _signin_page(
                request, "Unknown or revoked token, or one without the manage scope.", status=401
            )
        _, cookie = sessions.issue(key, token.account, token.name)
        response = RedirectResponse("/", status_code=303)
        _cookie(request, response, sessions.SESSION_COOKIE, cookie)
        response.delete_cookie(sessions.SIGNIN_COOKIE, path="/")
        return response

    @app.post("/signout", include_in_schema=False)
    async def signout(request: Request) -> Response:
        seen = await viewer(request)
        await checked_form(request)
        await call(lambda engine: _end_session(engine, seen.session))
        response = RedirectResponse("/signin", status_code=303)
        response.delete_cookie(sessions.SESSION_COOKIE, path="/")
        return response

    @app.get("/a/{account}", include_in_schema=False)
    async def bots(request: Request, account: str, page_no: int = 1, switched: str | None = None) -> Response:
        await account_viewer(request, account)
        rows = await call(lambda engine: reads.bot_rows(engine, account))
        editable = await call(lambda engine: engine.rules_in_store)
        now = datetime.now(UTC)
        totals = await call(lambda engine: reads.user_totals(engine, account, now))
        start = (max(page_no, 1) - 1) * reads.PAGE_SIZE
        return page(
            request,
            "bots.html",
            account=account,
            editable=editable,
            rows=rows[start : start + reads.PAGE_SIZE],
            total=len(rows),
            page_no=max(page_no, 1),
            more=start + reads.PAGE_SIZE < len(rows),
            # The notice after a switch: the bot's switch as the store has it now.
            switched=next((row for row in rows if row.bot.id == switched), None),
            totals=totals,
            periods=PERIODS,
        )

    @app.get("/a/{account}/bots/{bot}/active", include_in_schema=False)
    async def switch_confirm(
        request: Request, account: str, bot: str, to: str = "off", back: str = ""
    ) -> Response:
        """Ask before switching: the bot, what changes, and the form that does it."""
        await account_viewer(request, account)
        if to not in ("on", "off"):
            raise PageError(400, "switch a bot to on or off")
        found = await call(lambda engine: engine.rules.bot(account, bot))
        if found is None:
            raise PageError(404, "not found")
        return page(
            request,
            "confirm.html",
            account=account,
            title=f"Switch bot {found.display_name} {to}?",
            explain=(
                f"Bot {found.display_name} "
                + ("assigns nothing from the next event on" if to == "off" else "takes the next event again")
                + " (the same switch as salesbot bot "
                + ("disable" if to == "off" else "enable")
                + "; no new rules version)."
            ),
            changes=[],
            action=f"/a/{quote(account, safe='')}/bots/{quote(bot, safe='')}/active",
            fields={"active": to, "back": "bot" if back == "bot" else ""},
            button=f"Switch {to}",
            back=_switched_url(account, bot, back, None),
        )

    @app.post("/a/{account}/bots/{bot}/active", include_in_schema=False)
    async def switch(request: Request, account: str, bot: str) -> Response:
        seen = await account_viewer(request, account)
        form = await checked_form(request)
        if form.get("active") not in ("on", "off"):
            raise PageError(400, "the form must say active=on or active=off")

        def run(engine: Engine) -> bool:
            if engine.rules.bot(account, bot) is None:
                return False
            engine.set_bot_active(account, bot, form["active"] == "on", by=seen.who)
            return True

        if not await call(run):
            raise PageError(404, "not found")
        return RedirectResponse(_switched_url(account, bot, form.get("back", ""), bot), status_code=303)

    async def bot_page(
        request: Request, account: str, bot: str, dry_run: int, switched: bool = False
    ) -> Response:
        now = datetime.now(UTC)
        found = await call(lambda engine: reads.bot_page(engine, account, bot, now, dry_run))
        if found is None:
            raise PageError(404, "not found")
        return page(
            request,
            "bot.html",
            account=account,
            p=found,
            dry_run=dry_run,
            max_dry_run=reads.MAX_DRY_RUN,
            switched=found.row if switched else None,
        )

    @app.get("/a/{account}/bots/{bot}", include_in_schema=False)
    async def bot_view(request: Request, account: str, bot: str, switched: str | None = None) -> Response:
        await account_viewer(request, account)
        return await bot_page(request, account, bot, 10, switched == bot)

    @app.post("/a/{account}/bots/{bot}/simulate", include_in_schema=False)
    async def simulate(request: Request, account: str, bot: str) -> Response:
        await account_viewer(request, account)
        form = await checked_form(request)
        count = form.get("count", "")
        if not count.isdigit() or not 1 <= int(count) <= reads.MAX_DRY_RUN:
            raise PageError(
                400, f"the number of records must be a whole number from 1 to {reads.MAX_DRY_RUN}"
            )
        return await bot_page(request, account, bot, int(count))

    @app.get("/a/{account}/records", include_in_schema=False)
    async def record_search(request: Request, account: str, entity: str = "", id: str = "") -> Response:
        await account_viewer(request, account)
        if entity in ENTITIES and id:
            return RedirectResponse(
                f"/a/{quote(account, safe='')}/records/{entity}/{quote(id, safe='')}", status_code=303
            )
        return page(request, "search.html", account=account, entities=ENTITIES, entity=entity, id=id)

    @app.get("/a/{account}/records/{entity}/{record_id}", include_in_schema=False)
    async def record(request: Request, account: str, entity: str, record_id: str) -> Response:
        await account_viewer(request, account)
        if entity not in ENTITIES:
            raise PageError(404, "not found")
        found = await call(lambda engine: reads.record_page(engine, account, entity, record_id))
        if found is None:
            return page(
                request,
                "search.html",
                404,
                account=account,
                entities=ENTITIES,
                entity=entity,
                id=record_id,
                missing=True,
            )
        return page(request, "record.html", account=account, p=found)

    async def live_rows(account: str, before: int | None) -> list[tuple[int, Any]]:
        return await call(lambda engine: engine.store.recent_outcomes(account, reads.PAGE_SIZE, before))

    @app.get("/a/{account}/live", include_in_schema=False)
    async def live(request: Request, account: str, before: int | None = None) -> Response:
        await account_viewer(request, account)
        rows = await live_rows(account, before)
        return page(request, "live.html", account=account, rows=rows, before=before, seconds=LIVE_SECONDS)

    @app.get("/a/{account}/live/rows", include_in_schema=False)
    async def live_fragment(request: Request, account: str) -> Response:
        await account_viewer(request, account)
        return page(request, "live_rows.html", account=account, rows=await live_rows(account, None))

    @app.get("/a/{account}/deliveries", include_in_schema=False)
    async def deliveries(request: Request, account: str) -> Response:
        await account_viewer(request, account)
        found = await call(lambda engine: reads.deliveries(engine, account))
        return page(request, "deliveries.html", account=account, found=found)

    @app.post("/a/{account}/deliveries/{delivery}/retry", include_in_schema=False)
    async def retry(request: Request, account: str, delivery: str) -> Response:
        await account_viewer(request, account)
        await checked_form(request)
        now = utc_iso(datetime.now(UTC))
        if not await call(lambda engine: engine.store.replay_delivery(account, delivery, now)):
            raise PageError(404, "not found (or already pending)")
        return RedirectResponse(f"/a/{quote(account, safe='')}/deliveries", status_code=303)

    def replay_page(request: Request, account: str, status: int = 200, **shown: Any) -> HTMLResponse:
        shown.setdefault("since", "30d")
        shown.setdefault("rules", "")
        return page(request, "replay.html", status, account=account, windows=REPLAY_WINDOWS, **shown)

    @app.get("/a/{account}/replay", include_in_schema=False)
    async def replay(request: Request, account: str) -> Response:
        await account_viewer(request, account)
        return replay_page(request, account)

    @app.post("/a/{account}/replay", include_in_schema=False)
    async def replay_run(request: Request, account: str) -> Response:
        """What if: the account's kept events of a window replayed under the pasted
        candidate rules (``salesbot replay``), writing nothing."""
        await account_viewer(request, account)
        form = await checked_form(request, MAX_REPLAY_FORM_BYTES)
        since_text, rules = form.get("since", ""), form.get("rules", "")
        if since_text not in REPLAY_WINDOWS:
            raise PageError(400, f"the window must be one of {', '.join(REPLAY_WINDOWS)}")
        now = datetime.now(UTC)
        since = parse_moment(since_text, now, "since")
        kept = await call(lambda engine: read_window(engine.store, account, since, now))
        try:
            result = await run_in_threadpool(replay_files, {CANDIDATE_FILE: rules}, kept, account, since, now)
        except RulesetError as exc:
            problems = [str(problem) for problem in exc.problems]
            return replay_page(request, account, 422, since=since_text, rules=rules, problems=problems)
        return replay_page(request, account, since=since_text, rules=rules, result=result)

    async def page_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PageError)
        return page(request, "error.html", exc.status, code=exc.status, message=exc.message)

    async def sign_in_needed(request: Request, exc: Exception) -> Response:
        if request.method == "GET":
            return RedirectResponse("/signin", status_code=303)
        return page(request, "error.html", 403, code=403, message="sign in first", viewer=None)

    app.add_exception_handler(PageError, page_error)
    app.add_exception_handler(SignInNeeded, sign_in_needed)


def _switched_url(account: str, bot: str, back: str, switched: str | None) -> str:
    """Where a bot's switch goes back to: the bot's page (``back=bot``) or the bots list,
    with ``?switched=`` naming the bot switched, for the page's notice."""
    url = f"/a/{quote(account, safe='')}"
    if back == "bot":
        url += f"/bots/{quote(bot, safe='')}"
    return url + (f"?switched={quote(switched, safe='')}" if switched else "")


def _cookie(request: Request, response: Response, name: str, value: str) -> None:
    """Set a session cookie: HttpOnly, SameSite=Strict, Secure when served over https."""
    response.set_cookie(
        name,
        value,
        max_age=sessions.SESSION_SECONDS,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
