"""The admin page's editing of rules kept in the store: the bot form, the history of
versions with restore, the users' switches, and drafts previewed before they publish.

Every save is one version (``Engine.publish``) with the signed-in token as its author,
made on the version the form was read at: when another admin published meanwhile, the
form comes back with what was typed and the current version (the 412 of the HTTP API,
without losing the edit). A change the rules refuse comes back the same way, each
problem next to its field, and nothing is written. With rules from a folder, the files
are where they are edited: the page says so instead.
"""

from __future__ import annotations

import json
import secrets
import zoneinfo
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from .. import rulebook
from ..engine import Engine
from ..errors import SalesbotError, StaleVersion
from ..managing import RulesInFolder
from ..models import EVENT_KINDS, USER_PREFIX
from ..rulebook import FieldProblem, NotFound, RulebookError
from ..store import RulesVersion
from ..templates import MAX_NOTE_BYTES
from ..vocabulary import ENTITIES
from . import botform, conditionform, userform

#: The biggest bot form: conditions and options typed as YAML, a long pool.
MAX_BOT_FORM_BYTES = 256 * 1024
#: The most fields of a bot form (a checkbox per pool user).
MAX_BOT_FORM_FIELDS = 2000
#: The biggest user form: a long list of absences typed as YAML.
MAX_USER_FORM_BYTES = 64 * 1024
#: The most fields of a user form (its own and the plugins').
MAX_USER_FORM_FIELDS = 100
#: The biggest restore, switch or draft form: bytes.
SMALL_FORM = 8 * 1024
#: The empty rows the condition builder shows below the condition's, to add to it.
SPARE_ROWS = 2
#: The most records one offboarding from the page moves (as the API's request): the page
#: says how many remain, and the same button moves them.
MAX_OFFBOARD = 1000
#: The time zones the user form suggests (any zone ``zoneinfo`` knows is taken).
ZONES = sorted(zoneinfo.available_timezones())
#: The versions the history page shows, newest first.
HISTORY = 50
#: What the page says instead of a form when the rules come from files.
IN_FOLDER = (
    "The rules of this server come from ruleset files: edit them there (or move them into the store "
    "with `salesbot rules push` and serve with --rules-from store)."
)


@dataclass(frozen=True)
class Tools:
    """What the editing routes take from the page (``views.install``)."""

    call: Callable[[Callable[[Engine], Any]], Awaitable[Any]]
    page: Callable[..., Response]
    #: The signed-in viewer allowed to see the account (404 otherwise).
    account_viewer: Callable[[Request, str], Awaitable[Any]]
    #: A posted form with its CSRF token checked: each field's values.
    form: Callable[[Request, int, int], Awaitable[dict[str, list[str]]]]
    error: type[Exception]


def _url(account: str, *parts: str) -> str:
    return "/".join([f"/a/{quote(account, safe='')}", *(quote(p, safe="") for p in parts)])


def _published(engine: Engine, account: str, number: str | None) -> RulesVersion | None:
    """The version a redirect after a save names (``?published=N``), for its notice."""
    if not number or not number.isdigit():
        return None
    return engine.store.rules_version(account, int(number))


def install(app: FastAPI, tools: Tools) -> None:
    """Add the editing routes (before ``/a/{account}/bots/{bot}``, which would take ``new``)."""
    call, page, fail = tools.call, tools.page, tools.error

    async def editable(
        request: Request, account: str, limit: int = 0, fields: int = 20
    ) -> tuple[Any, dict[str, list[str]]]:
        """The viewer and, for a post (``limit`` bytes), its form with the CSRF token
        checked; once the rules are the store's to edit (409 with rules from files)."""
        seen = await tools.account_viewer(request, account)
        posted = await tools.form(request, limit, fields) if limit else {}
        if not await call(lambda engine: engine.rules_in_store):
            raise fail(409, IN_FOLDER)
        return seen, posted

    # -- The bot form.

    def bot_form(
        request: Request,
        account: str,
        found: Mapping[str, Any],
        form: botform.BotForm,
        new: bool,
        status: int = 200,
        **shown: Any,
    ) -> Response:
        book = found["book"]
        owner = next((u for u in book["users"] if form.users and u.get("id") == form.users[0]), None)
        bot = {"id": form.id, "name": form.name, "entity": form.entity}
        previews = {
            name: botform.preview(getattr(form, name), bot, owner, MAX_NOTE_BYTES)
            for name in botform.TEXTS
            if getattr(form, name)
        }
        return page(
            request,
            "bot_form.html",
            status,
            account=account,
            f=form,
            new=new,
            version=found["version"],
            users=book["users"],
            strategies=found["strategies"],
            entities=ENTITIES,
            event_kinds=EVENT_KINDS,
            owned_choices=botform.OWNED,
            related_modes=found["modes"],
            plugin_fields=found["fields"],
            operators=conditionform.OPERATORS,
            rows=[*form.cond.rows, *[conditionform.Row()] * SPARE_ROWS],
            record_fields=sorted({key for sample in botform.SAMPLE.values() for key in sample} - {"id"}),
            previews=previews,
            problems=shown.pop("problems", {}),
            **shown,
        )

    def read_book(engine: Engine, account: str) -> dict[str, Any]:
        version, book = engine.rulebook(account)
        return {
            "version": version,
            "book": book,
            "strategies": sorted(engine.catalog.strategies),
            "modes": sorted(engine.catalog.propagation_modes),
            "fields": botform.plugin_fields(engine.catalog),
            "user_fields": botform.plugin_fields(engine.catalog, "user"),
        }

    async def opened(request: Request, account: str) -> dict[str, Any]:
        """For a form's page: the account's rules, once the viewer may edit them."""
        await editable(request, account)
        return await call(lambda engine: read_book(engine, account))

    @app.get("/a/{account}/bots/new", include_in_schema=False)
    async def new_bot(request: Request, account: str) -> Response:
        found = await opened(request, account)
        return bot_form(request, account, found, botform.BotForm(), True)

    @app.get("/a/{account}/bots/{bot}/edit", include_in_schema=False)
    async def edit_bot(request: Request, account: str, bot: str) -> Response:
        found = await opened(request, account)
        try:
            kept = rulebook.entry(found["book"], "bots", bot)
        except NotFound:
            raise fail(404, "not found") from None
        return bot_form(request, account, found, botform.from_bot(kept, found["fields"]), False)

    async def save_bot(request: Request, account: str, bot_id: str | None) -> Response:
        seen, posted = await editable(request, account, MAX_BOT_FORM_BYTES, MAX_BOT_FORM_FIELDS)
        found = await call(lambda engine: read_book(engine, account))
        fields = found["fields"]
        form = botform.from_post(posted, bot_id, fields)
        action = (posted.get("do") or ["publish"])[0]
        message = (posted.get("message") or [""])[0].strip()
        read = (posted.get("version") or [""])[0]
        expected = int(read) if read.isdigit() else -1
        shown: dict[str, Any] = {"message": message}
        if expected != found["version"]:
            # Shown with the current version: saved again, it publishes over it.
            shown["stale"] = StaleVersion(account, expected, found["version"])
        book = found["book"]
        if bot_id is None and _has(book, form.id):
            taken = {"id": [f"id: a bot {form.id!r} exists already: edit it instead"]}
            return bot_form(request, account, found, form, True, 422, problems=taken, **shown)
        kept = rulebook.entry(book, "bots", bot_id) if bot_id is not None and _has(book, bot_id) else {}
        if bot_id is not None and not kept:
            raise fail(404, "not found")
        data, problems = botform.to_bot(form, kept, fields)
        if form.where_mode == "builder":  # the text the rows make, shown beside them
            form.where = botform.text_of(botform.mapping(data.get("trigger")).get("where"))
        new_book = rulebook.put(book, "bots", form.id, data) if form.id else book
        index = next((i for i, b in enumerate(new_book["bots"]) if b.get("id") == form.id), len(book["bots"]))
        if not form.id:
            problems.append(FieldProblem("id", "a bot needs an id (letters, digits, _ . @ -)"))
        if action == "preview" or problems or "stale" in shown:
            placed, others = botform.place(problems, index, fields)
            status = 409 if "stale" in shown else (422 if problems else 200)
            return bot_form(
                request, account, found, form, bot_id is None, status, problems=placed, others=others, **shown
            )

        def save(engine: Engine) -> int | None:
            if action == "draft":
                engine.save_draft(account, _draft(form.id), new_book, expected, author=seen.who)
                return None
            said = message or f"bot {form.id} saved in the page"
            return engine.publish(account, new_book, expected, author=seen.who, message=said)

        try:
            version = await call(save)
        except RulebookError as exc:
            placed, others = botform.place(exc.problems, index, fields)
            return bot_form(
                request, account, found, form, bot_id is None, 422, problems=placed, others=others, **shown
            )
        except StaleVersion as exc:
            found["version"] = exc.current
            shown["stale"] = exc
            return bot_form(request, account, found, form, bot_id is None, 409, **shown)
        except RulesInFolder:
            raise fail(409, IN_FOLDER) from None
        if version is None:
            return RedirectResponse(_url(account, "drafts", _draft(form.id)), status_code=303)
        return RedirectResponse(_url(account, "history") + f"?published={version}", status_code=303)

    @app.post("/a/{account}/bots/new", include_in_schema=False)
    async def create_bot(request: Request, account: str) -> Response:
        return await save_bot(request, account, None)

    @app.post("/a/{account}/bots/{bot}/edit", include_in_schema=False)
    async def update_bot(request: Request, account: str, bot: str) -> Response:
        return await save_bot(request, account, bot)

    @app.post("/a/{account}/preview", include_in_schema=False)
    async def preview_text(request: Request, account: str) -> Response:
        """The live preview of a bot text (the form's script asks as the admin types)."""
        await tools.account_viewer(request, account)
        posted = await tools.form(request, MAX_BOT_FORM_BYTES, 10)

        def one(name: str) -> str:
            return (posted.get(name) or [""])[0]

        def owner_of(engine: Engine) -> dict[str, Any] | None:
            user = engine.rules.user(account, one("owner")) if one("owner") else None
            return user.model_dump(include={"id", "name", "email"}) if user else None

        owner = await call(owner_of)
        bot = {"id": one("bot"), "name": one("name"), "entity": one("entity") or "deal"}
        shown = botform.preview(one("text"), bot, owner, MAX_NOTE_BYTES)
        return Response(shown.as_json(), media_type="application/json", headers={"Cache-Control": "no-store"})

    @app.post("/a/{account}/condition", include_in_schema=False)
    async def check_condition(request: Request, account: str) -> Response:
        """The condition the bot form says (its rows, or its text), checked as a file's is,
        as the admin edits it: its text, its problems by path, and the rows that make it
        (``null`` when the builder cannot show it)."""
        await tools.account_viewer(request, account)
        posted = await tools.form(request, MAX_BOT_FORM_BYTES, MAX_BOT_FORM_FIELDS)
        form = botform.from_post(posted)
        problems: list[FieldProblem] = []
        condition = botform.where_of(form, problems)
        if condition is not None:
            problems += conditionform.check(condition)
        built = conditionform.rows_of(condition) if not problems else None
        shown = {
            "where": botform.text_of(condition),
            "problems": [str(p) for p in problems],
            "join": built.join if built else None,
            "rows": [[r.field, r.op, r.value] for r in built.rows] if built else None,
        }
        return Response(
            json.dumps(shown, ensure_ascii=False),
            media_type="application/json",
            headers={"Cache-Control": "no-store"},
        )

    # -- History, restore.

    @app.get("/a/{account}/history", include_in_schema=False)
    async def history(request: Request, account: str, published: str | None = None) -> Response:
        await editable(request, account)

        def read(engine: Engine) -> dict[str, Any]:
            versions = engine.versions(account, HISTORY)
            return {
                "current": engine.account(account).version,
                "versions": [(v, engine.version_diff(account, v.version)) for v in versions],
                "drafts": engine.store.drafts(account),
                "published": _published(engine, account, published),
            }

        return page(request, "history.html", account=account, **await call(read))

    @app.get("/a/{account}/history/{version}/restore", include_in_schema=False)
    async def restore_confirm(request: Request, account: str, version: int) -> Response:
        await editable(request, account)

        def read(engine: Engine) -> dict[str, Any]:
            current, now = engine.rulebook(account)
            _, then = engine.rulebook(account, version)
            return {"current": current, "changes": rulebook.diff(now, then)}

        try:
            found = await call(read)
        except NotFound:
            raise fail(404, "not found") from None
        return page(
            request,
            "confirm.html",
            account=account,
            title=f"Restore version {version}?",
            explain=f"Version {version}'s rules become a new version, after version {found['current']}. "
            "What would change:",
            changes=found["changes"],
            action=_url(account, "history", str(version), "restore"),
            fields={"expected": found["current"]},
            button=f"Restore version {version}",
            back=_url(account, "history"),
        )

    @app.post("/a/{account}/history/{version}/restore", include_in_schema=False)
    async def restore(request: Request, account: str, version: int) -> Response:
        seen, posted = await editable(request, account, SMALL_FORM)
        expected = (posted.get("expected") or [""])[0]
        if not expected.isdigit():
            raise fail(400, "the form must carry the version it was read at")
        return await published(
            account,
            lambda engine: engine.restore(account, version, int(expected), author=seen.who),
            "history",
        )

    async def published(account: str, run: Callable[[Engine], int], back: str) -> Response:
        """Publish by ``run``, then back to the page ``back`` with the version's notice."""
        try:
            version = await call(run)
        except StaleVersion as exc:
            raise fail(409, f"{exc}: nothing was written; open the page again to see the rules now") from None
        except NotFound:
            raise fail(404, "not found") from None
        except RulebookError as exc:
            raise fail(422, f"the rules would not be valid: {exc}; nothing was written") from None
        return RedirectResponse(_url(account, back) + f"?published={version}", status_code=303)

    # -- Users.

    @app.get("/a/{account}/users", include_in_schema=False)
    async def users(request: Request, account: str, published: str | None = None) -> Response:
        await editable(request, account)

        def read(engine: Engine) -> dict[str, Any]:
            version, book = engine.rulebook(account)
            engine.refresh_rules()
            # On or off as events see them: an offboarding's switch overrides the rules.
            states = {state.user.id: state for state in engine.users(account)}
            fields = botform.plugin_fields(engine.catalog, "user")
            rows = [
                (
                    u,
                    rulebook.naming(book, str(u.get("id"))),
                    states.get(str(u.get("id"))),
                    [userform.summary(u.get(f.key), f.keys) for f in fields],
                )
                for u in book["users"]
            ]
            return {
                "version": version,
                "rows": rows,
                "fields": fields,
                "published": _published(engine, account, published),
            }

        return page(request, "users.html", account=account, **await call(read))

    # -- The user form.

    def user_form(
        request: Request,
        account: str,
        found: Mapping[str, Any],
        form: userform.UserForm,
        new: bool,
        status: int = 200,
        **shown: Any,
    ) -> Response:
        return page(
            request,
            "user_form.html",
            status,
            account=account,
            f=form,
            new=new,
            version=found["version"],
            plugin_fields=found["user_fields"],
            zones=ZONES,
            problems=shown.pop("problems", {}),
            **shown,
        )

    @app.get("/a/{account}/users/new", include_in_schema=False)
    async def new_user(request: Request, account: str) -> Response:
        found = await opened(request, account)
        return user_form(request, account, found, userform.UserForm(), True)

    @app.get("/a/{account}/users/{user}/edit", include_in_schema=False)
    async def edit_user(request: Request, account: str, user: str) -> Response:
        found = await opened(request, account)
        if not _has(found["book"], user, "users"):
            raise fail(404, "not found")
        kept = rulebook.entry(found["book"], "users", user)
        return user_form(request, account, found, userform.from_user(kept, found["user_fields"]), False)

    async def save_user(request: Request, account: str, user_id: str | None) -> Response:
        seen, posted = await editable(request, account, MAX_USER_FORM_BYTES, MAX_USER_FORM_FIELDS)
        found = await call(lambda engine: read_book(engine, account))
        fields, book, new = found["user_fields"], found["book"], user_id is None
        form = userform.from_post(posted, user_id, fields)
        message = (posted.get("message") or [""])[0].strip()
        read = (posted.get("version") or [""])[0]
        expected = int(read) if read.isdigit() else -1
        shown: dict[str, Any] = {"message": message}
        if expected != found["version"]:
            shown["stale"] = StaleVersion(account, expected, found["version"])
            return user_form(request, account, found, form, new, 409, **shown)
        if new and _has(book, form.id, "users"):
            taken = {"id": [f"id: a user {form.id!r} exists already: edit it instead"]}
            return user_form(request, account, found, form, True, 422, problems=taken, **shown)
        if not new and not _has(book, form.id, "users"):
            raise fail(404, "not found")
        kept = {} if new else rulebook.entry(book, "users", form.id)
        data, problems = userform.to_user(form, kept, fields)
        if not form.id:
            problems.append(FieldProblem("id", "a user needs an id (letters, digits, _ . @ -)"))
        new_book = rulebook.put(book, "users", form.id, data) if form.id else book
        ids = [u.get("id") for u in new_book["users"]]
        index = ids.index(form.id) if form.id in ids else len(ids)

        def refused(found_problems: list[FieldProblem]) -> Response:
            placed, others = botform.place(found_problems, index, fields, "users", userform.FIELDS, True)
            return user_form(request, account, found, form, new, 422, problems=placed, others=others, **shown)

        if problems:  # the form's own, at their path in the rulebook as the rest are
            return refused([FieldProblem(f"users[{index}].{p.field}", p.message) for p in problems])
        said = message or f"user {form.id} {'added' if new else 'saved'} in the page"
        try:
            version = await call(
                lambda engine: engine.publish(account, new_book, expected, author=seen.who, message=said)
            )
        except RulebookError as exc:
            return refused(exc.problems)
        except StaleVersion as exc:
            found["version"] = exc.current
            return user_form(request, account, found, form, new, 409, stale=exc, **shown)
        return RedirectResponse(_url(account, "users") + f"?published={version}", status_code=303)

    @app.post("/a/{account}/users/new", include_in_schema=False)
    async def post_new_user(request: Request, account: str) -> Response:
        return await save_user(request, account, None)

    @app.post("/a/{account}/users/{user}/edit", include_in_schema=False)
    async def post_edit_user(request: Request, account: str, user: str) -> Response:
        return await save_user(request, account, user)

    @app.get("/a/{account}/users/{user}/active", include_in_schema=False)
    async def user_confirm(request: Request, account: str, user: str, to: str = "off") -> Response:
        await editable(request, account)
        if to not in ("on", "off"):
            raise fail(400, "switch a user to on or off")
        version, book = await call(lambda engine: engine.rulebook(account))
        if not _has(book, user, "users"):
            raise fail(404, "not found")
        bots = rulebook.naming(book, user)
        owned = await call(lambda engine: len(engine.store.open_records(account, user))) if to == "off" else 0
        return page(
            request,
            "confirm.html",
            account=account,
            title=f"Switch user {user} {to}?",
            explain=(
                f"A new version, after version {version}, with user {user} "
                + ("deactivated: no bot picks them" if to == "off" else "active again")
                + (f" (in the pools of {', '.join(bots)})." if bots else ".")
                + (f" Their {owned} open records stay with them." if owned else "")
            ),
            more=(
                _url(account, "users", user, "offboard"),
                "Offboard instead: see where each record would go",
            )
            if owned
            else None,
            changes=[],
            action=_url(account, "users", user, "active"),
            fields={"expected": version, "active": to},
            button=f"Switch {user} {to}",
            back=_url(account, "users"),
        )

    @app.post("/a/{account}/users/{user}/active", include_in_schema=False)
    async def user_switch(request: Request, account: str, user: str) -> Response:
        seen, posted = await editable(request, account, SMALL_FORM)
        active = (posted.get("active") or [""])[0]
        expected = (posted.get("expected") or [""])[0]
        if active not in ("on", "off") or not expected.isdigit():
            raise fail(400, "the form must say active=on or active=off and carry the version it was read at")

        def run(engine: Engine) -> int:
            _, book = engine.rulebook(account)
            kept = {k: v for k, v in rulebook.entry(book, "users", user).items() if k != "active"}
            if active == "off":
                kept["active"] = False
            version = engine.publish(
                account,
                rulebook.put(book, "users", user, kept),
                int(expected),
                author=seen.who,
                message=f"user {user} switched {active}",
            )
            switch = engine.store.switches(account).get(USER_PREFIX + user)
            if active == "on" and switch is not None and not switch.active:
                # Switched off by an offboarding: on again too, or the switch keeps them off.
                engine.set_user_active(account, user, True, by=seen.who)
            return version

        return await published(account, run, "users")

    # -- Offboarding: where each record would go, then the move.

    def offboarding(engine: Engine, account: str, user: str, to_bot: str, operation: str) -> dict[str, Any]:
        """What the offboarding page shows: the preview (or the answer, once done) is the
        offboarding core's own (``Engine.preview_offboard``, ``Engine.offboard``)."""
        engine.refresh_rules()
        if engine.rules.user(account, user) is None:
            raise NotFound(f"no user {user!r}")
        if to_bot and engine.rules.bot(account, to_bot) is None:
            raise fail(400, f"no bot {to_bot[:200]!r} in account {account!r}")
        return {
            "user": engine.rules.user(account, user),
            "bots": [bot for bot, on in engine.bots(account) if on],
            "to_bot": to_bot,
            "operation": operation,
        }

    @app.get("/a/{account}/users/{user}/offboard", include_in_schema=False)
    async def offboard_preview(request: Request, account: str, user: str, to_bot: str = "") -> Response:
        await editable(request, account)
        operation = f"page-{secrets.token_hex(8)}"

        def read(engine: Engine) -> dict[str, Any]:
            shown = offboarding(engine, account, user, to_bot, operation)
            shown["result"] = engine.preview_offboard(
                account, user, operation, to_bot=to_bot or None, limit=MAX_OFFBOARD
            )
            return shown

        try:
            found = await call(read)
        except NotFound:
            raise fail(404, "not found") from None
        return page(request, "offboard.html", account=account, done=False, **found)

    @app.post("/a/{account}/users/{user}/offboard", include_in_schema=False)
    async def offboard(request: Request, account: str, user: str) -> Response:
        seen, posted = await editable(request, account, SMALL_FORM)
        operation = (posted.get("operation") or [""])[0]
        to_bot = (posted.get("to_bot") or [""])[0]
        if not operation.startswith("page-"):
            raise fail(400, "the form must carry the operation id its preview made")

        def run(engine: Engine) -> dict[str, Any]:
            shown = offboarding(engine, account, user, to_bot, operation)
            shown["result"] = engine.offboard(
                account, user, operation, to_bot=to_bot or None, limit=MAX_OFFBOARD, by=seen.who
            )
            return shown

        try:
            found = await call(run)
        except NotFound:
            raise fail(404, "not found") from None
        except SalesbotError as exc:  # another user's operation id, a bad one
            raise fail(400, str(exc)) from None
        return page(request, "offboard.html", account=account, done=True, **found)

    # -- Drafts.

    @app.get("/a/{account}/drafts/{draft}", include_in_schema=False)
    async def draft_page(request: Request, account: str, draft: str) -> Response:
        await editable(request, account)

        def read(engine: Engine) -> dict[str, Any]:
            kept = engine.draft(account, draft)
            current, now = engine.rulebook(account)
            book = rulebook.loads(kept.content)
            problems: list[str] = []
            try:
                engine.check_rulebook(account, book).conditions.close()
            except RulebookError as exc:
                problems = [str(p) for p in exc.problems]
            return {
                "draft": kept,
                "current": current,
                "changes": rulebook.diff(now, book),
                "problems": problems,
            }

        try:
            found = await call(read)
        except NotFound:
            raise fail(404, "not found") from None
        return page(request, "draft.html", account=account, **found)

    @app.post("/a/{account}/drafts/{draft}/publish", include_in_schema=False)
    async def draft_publish(request: Request, account: str, draft: str) -> Response:
        seen, posted = await editable(request, account, SMALL_FORM)
        message = (posted.get("message") or [""])[0].strip() or f"draft {draft} published"
        return await published(
            account,
            lambda engine: engine.publish_draft(account, draft, author=seen.who, message=message),
            "history",
        )

    @app.post("/a/{account}/drafts/{draft}/discard", include_in_schema=False)
    async def draft_discard(request: Request, account: str, draft: str) -> Response:
        await editable(request, account, SMALL_FORM)
        await call(lambda engine: engine.store.delete_draft(account, draft))
        return RedirectResponse(_url(account, "history"), status_code=303)


def _has(book: Mapping[str, Any], entry_id: str, section: str = "bots") -> bool:
    return any(isinstance(e, dict) and e.get("id") == entry_id for e in book.get(section, []))


def _draft(bot: str) -> str:
    """The draft a bot's form saves to: one per bot."""
    return f"bot-{bot}"


__all__ = ["Tools", "install"]
