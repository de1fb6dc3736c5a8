"""``/v1/accounts/{account}/...``: an account's rules as data over HTTP (bots, users,
settings, versions, drafts), with optimistic concurrency.

Why separate: the rules routes share one way of working that no other resource has.
Every answer carries the account's rules version as ``ETag: "v<version>"``; every write
must send it back in ``If-Match`` (428 without it, 412 when another editor published
since), as Kubernetes' ``resourceVersion`` and HTTP's conditional requests do, so two
editors never overwrite each other unseen. A write is one pure edit of the account's
rulebook (``salesbot_core.rulebook``) published as one version by the core
(``Engine.publish``), which validates it as a ruleset file and enforces the plan; the
author is the token's name, the message the ``message`` query parameter. Each route first
reads the store's rules generation (``Engine.refresh_rules``), so a worker answers with
the versions other workers published.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from .. import rulebook
from ..engine import Engine
from ..errors import EventError, SalesbotError, StaleVersion
from ..managing import RulesInFolder
from ..models import record_from_dict
from ..replay import RejectedEvent, candidate_engine, read_window, replay, why
from ..rulebook import NotFound, Rulebook, RulebookError, UserInPools
from ..rulesets import Rules
from ..store import Draft
from .auth import Api
from .common import Problem, Service, _Body, _model, read_json
from .replay import BUSY, ReplayAnswer, ReplaySlot, window

T = TypeVar("T")

_ETAG = re.compile(r'^(?:W/)?"v(\d{1,18})"$')
#: An id in a path (a bot, a user, a draft): bounded, as ids in ruleset files are.
Id = Annotated[str, Path(min_length=1, max_length=200)]
#: The optional message of the version a write publishes.
Message = Annotated[
    str | None,
    Query(max_length=1000, description="Why: kept with the version the write publishes."),
]
#: The problems of the rules routes, for the OpenAPI document.
READS = {409: "The server serves its rules from a folder: they are edited in its files."}
WRITES = {
    **READS,
    404: "No such account (for this token), bot, user, version or draft.",
    409: "The rules are served from a folder; or the user is in bots' pools (the problem names them).",
    412: "If-Match is not the current version: the problem names it (current_version).",
    422: "The rules would be invalid (each field named: bots[2].users[0]) or over the plan's limits.",
    428: 'No If-Match: send the ETag of the rules you read, "v<version>".',
}
#: The header every write needs, for the OpenAPI document (``if_match`` reads it).
IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "required": True,
    "description": 'The ETag of the rules you read, "v<version>": a write publishes only on it.',
    "schema": {"type": "string", "pattern": _ETAG.pattern},
}
#: Why a ``manage`` token may not set the plan or the activation.
OPERATOR = "plan or enabled changed: they are the operator's (the problem names the field)."


class Document(BaseModel):
    """A free-form JSON object, validated by the core as a ruleset file is."""

    model_config = ConfigDict(extra="allow")


class RulebookDocument(BaseModel):
    """An account's rules: a ruleset file as JSON, without ``account``."""

    model_config = ConfigDict(extra="allow")
    settings: dict[str, Any] | None = None
    users: list[dict[str, Any]] = Field(default_factory=list)
    bots: list[dict[str, Any]] = Field(default_factory=list)


class Published(BaseModel):
    """A write's answer: the account's rules version after it (also the new ETag)."""

    account: str
    version: int


class UsersSync(_Body):
    """The whole team as the CRM's directory has it; kept users it lacks are deactivated."""

    users: list[Document] = Field(max_length=10_000)


class SyncReport(Published):
    """What the sync changed, by user id."""

    added: list[str]
    updated: list[str]
    deactivated: list[str]
    unchanged: list[str]


class VersionInfo(BaseModel):
    version: int
    author: str | None
    created_at: str
    message: str | None
    restored_from: int | None


class Versions(BaseModel):
    account: str
    current: int
    versions: list[VersionInfo]


class VersionDocument(VersionInfo):
    rules: RulebookDocument


class VersionDiff(BaseModel):
    account: str
    version: int
    against: int
    #: Each change: ``op`` (added, removed, changed, reordered), ``path``, ``before``, ``after``.
    changes: list[dict[str, Any]]


class DraftDocument(BaseModel):
    account: str
    draft: str
    base_version: int
    author: str | None
    changed_at: str
    rules: RulebookDocument


class DraftDeleted(BaseModel):
    account: str
    draft: str
    deleted: bool


class PreviewRequest(_Body):
    """The replay's window (as ``POST .../replay``) and how many of the account's latest
    decided records the dry run decides again."""

    since: str = Field(default="30d", max_length=100)
    until: str | None = Field(default=None, max_length=100)
    records: int = Field(default=50, ge=0, le=1000)


class DryRunChange(BaseModel):
    event_id: str
    entity: str
    record_id: str
    actual: list[str]
    draft: list[str]
    draft_reason: str


class DryRun(BaseModel):
    records: int
    changes: list[DryRunChange]
    rejected: list[RejectedEvent]


class Preview(BaseModel):
    account: str
    draft: str
    base_version: int
    #: The what-if replay's answer, as ``POST .../replay`` answers it.
    replay: ReplayAnswer
    dry_run: DryRun


def etag(version: int) -> dict[str, str]:
    return {"ETag": f'"v{version}"'}


def answer(data: Any, version: int, status: int = 200) -> JSONResponse:
    """``data`` as JSON with the account's rules version as its ETag."""
    return JSONResponse(data, status, headers=etag(version))


def if_match(request: Request) -> int:
    """The version the writer read: 428 without a usable ``If-Match``."""
    header = request.headers.get("if-match")
    found = _ETAG.match(header.strip()) if header is not None else None
    if found is None:
        detail = 'send If-Match with the ETag of the rules you read ("v<version>", as GET answers it)'
        raise Problem(428, detail, "precondition-required")
    return int(found.group(1))


#: The core's errors of the rules, each answered as its problem (``rules_problem``).
RULES_ERRORS = (RulebookError, UserInPools, StaleVersion, RulesInFolder, NotFound)


def rules_problem(exc: SalesbotError) -> Problem:
    """A core error of the rules as the problem it answers."""
    if isinstance(exc, RulebookError):
        errors = [{"field": p.field, "message": p.message} for p in exc.problems]
        return Problem(422, str(exc), "invalid-rules", errors)
    if isinstance(exc, UserInPools):
        return Problem(409, str(exc), "user-in-pools", None, None, {"bots": exc.bots})
    if isinstance(exc, StaleVersion):
        extensions = {"current_version": exc.current}
        return Problem(412, str(exc), "stale-version", None, etag(exc.current), extensions)
    if isinstance(exc, RulesInFolder):
        return Problem(409, str(exc), "rules-in-folder")
    return Problem(404, str(exc), "not-found")


async def on_rules(service: Service, fn: Callable[[Engine], T]) -> T:
    """Run ``fn`` on the worker's engine once it read what other workers published;
    the core's errors of the rules become their problems."""

    def run(engine: Engine) -> T:
        engine.require_store()
        engine.refresh_rules()
        return fn(engine)

    try:
        return await service.call(run)
    except RULES_ERRORS as exc:
        raise rules_problem(exc) from None


def entry_of(engine: Engine, account: str, section: str, entry_id: str) -> tuple[dict[str, Any], int]:
    """A bot or user of the account's current rules, and the version."""
    version, book = engine.rulebook(account)
    return rulebook.entry(book, section, entry_id), version


def edit(
    engine: Engine,
    account: str,
    expected: int,
    change: Callable[[Rulebook], Rulebook],
    author: str,
    message: str | None,
) -> int:
    """Publish ``change`` of the current rulebook if ``expected`` is still current."""
    version, book = engine.rulebook(account)
    if version != expected:
        raise StaleVersion(account, expected, version)
    return engine.publish(account, change(book), expected, author=author, message=message)


def _author(request: Request) -> str:
    return str(request.state.token.name)


def _object(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        detail = "the body must be a JSON object"
        raise Problem(422, detail, "invalid-body", [{"field": "(body)", "message": detail}])
    return data


def install(api: Api, service: Service, prefix: str, slot: ReplaySlot) -> None:
    """Add the routes of an account's rules: reading needs ``read``, changing ``manage``."""

    def write(
        method: str, path: str, body: type[BaseModel] | None = None, problems: Any = WRITES, **kw: Any
    ) -> Any:
        return api(method, path, "manage", body=body, problems=problems, headers=[IF_MATCH], **kw)

    def read(path: str, **kw: Any) -> Any:
        return api("GET", path, "read", problems=READS, **kw)

    async def publish_edit(
        request: Request, account: str, change: Callable[[Rulebook], Rulebook], message: str | None
    ) -> JSONResponse:
        expected, author = if_match(request), _author(request)
        version = await on_rules(service, lambda e: edit(e, account, expected, change, author, message))
        return answer({"account": account, "version": version}, version)

    # -- Bots and users: one entry of the rulebook each.

    @read(f"{prefix}/bots/{{bot}}", answer=Document)
    async def get_bot(account: str, bot: Id) -> JSONResponse:
        """The bot as the account's rules keep it."""
        return answer(*await on_rules(service, lambda e: entry_of(e, account, "bots", bot)))

    @write("PUT", f"{prefix}/bots/{{bot}}", Document, answer=Published)
    async def put_bot(account: str, bot: Id, request: Request, message: Message = None) -> JSONResponse:
        """Create or replace the bot (kept in its place among the account's), as one
        version: an invalid one is a 422 naming each field by its path in the account's
        rules (``bots[2].users[0]``), a bot over the plan's limits a 422 naming the limit."""
        data = _object(await read_json(request))
        return await publish_edit(
            request, account, lambda book: rulebook.put(book, "bots", bot, data), message
        )

    @read(f"{prefix}/users/{{user}}", answer=Document)
    async def get_user(account: str, user: Id) -> JSONResponse:
        """The user as the account's rules keep them."""
        return answer(*await on_rules(service, lambda e: entry_of(e, account, "users", user)))

    @write("PUT", f"{prefix}/users/{{user}}", Document, answer=Published)
    async def put_user(account: str, user: Id, request: Request, message: Message = None) -> JSONResponse:
        """Create or replace the user, as one version."""
        data = _object(await read_json(request))
        return await publish_edit(
            request, account, lambda book: rulebook.put(book, "users", user, data), message
        )

    @write("DELETE", f"{prefix}/bots/{{bot}}", answer=Published)
    async def delete_bot(account: str, bot: Id, request: Request, message: Message = None) -> JSONResponse:
        """Remove the bot, as one version."""
        return await publish_edit(request, account, lambda book: rulebook.remove(book, "bots", bot), message)

    @write("DELETE", f"{prefix}/users/{{user}}", answer=Published)
    async def delete_user(
        account: str,
        user: Id,
        request: Request,
        message: Message = None,
        from_pools: Annotated[bool, Query(description="Also take the user out of bots' pools.")] = False,
    ) -> JSONResponse:
        """Remove the user: a 409 naming the bots whose pools (or fallbacks) name them,
        unless ``from_pools=true``, which takes them out of those in the same version."""
        return await publish_edit(
            request, account, lambda book: rulebook.remove_user(book, user, from_pools), message
        )

    @write("PUT", f"{prefix}/users", UsersSync, answer=SyncReport)
    async def put_users(account: str, request: Request, message: Message = None) -> JSONResponse:
        """Sync the whole team from the CRM's directory, as one version: each user given
        is added or updated (fields set only here stay), every kept user not given is
        deactivated. Answers what changed, by user id."""
        wanted: UsersSync = _model(UsersSync, await read_json(request))
        given = [user.model_dump() for user in wanted.users]
        expected, author = if_match(request), _author(request)
        report: dict[str, list[str]] = {}

        def change(book: Rulebook) -> Rulebook:
            new, found = rulebook.sync_users(book, given)
            report.update(found)
            return new

        version = await on_rules(service, lambda e: edit(e, account, expected, change, author, message))
        return answer({"account": account, "version": version, **report}, version)

    # -- Settings: the account's, beside the operator's plan and activation.

    @read(f"{prefix}/settings", answer=Document)
    async def get_settings(account: str) -> JSONResponse:
        """The account's settings, with the plan and activation the operator set."""

        def run(engine: Engine) -> tuple[int, dict[str, Any]]:
            row = engine.account(account)
            version, book = engine.rulebook(account)
            return version, {**book.get("settings", {}), **row.standing}

        version, settings = await on_rules(service, run)
        return answer(settings, version)

    @write("PUT", f"{prefix}/settings", Document, answer=Published, problems={**WRITES, 403: OPERATOR})
    async def put_settings(account: str, request: Request, message: Message = None) -> JSONResponse:
        """Replace the account's settings, as one version. ``plan`` and ``enabled`` are the
        operator's (``PATCH /v1/accounts/{account}``): sent as they are, they are ignored
        (a GET's answer can be sent back); changed, they are a 403 naming the field."""
        data = _object(await read_json(request))
        expected, author = if_match(request), _author(request)

        def run(engine: Engine) -> int:
            row = engine.account(account)
            standing = row.standing
            for key in rulebook.OPERATOR_SETTINGS:
                if key in data and data[key] != standing[key]:
                    detail = (
                        f"settings.{key} is the operator's: an admin token sets it with "
                        "PATCH /v1/accounts/{account}"
                    )
                    raise Problem(
                        403, detail, "operator-setting", [{"field": f"settings.{key}", "message": detail}]
                    )
            settings = {k: v for k, v in data.items() if k not in rulebook.OPERATOR_SETTINGS}
            return edit(
                engine, account, expected, lambda book: rulebook.put_settings(book, settings), author, message
            )

        version = await on_rules(service, run)
        return answer({"account": account, "version": version}, version)

    # -- Versions: every publish, its document and what it changed; restore.

    @read(f"{prefix}/versions", answer=Versions)
    async def get_versions(
        account: str,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        before: Annotated[int | None, Query(ge=1, description="Only versions older than this one.")] = None,
    ) -> JSONResponse:
        """The account's versions, newest first: who published each, when and why."""

        def run(engine: Engine) -> tuple[int, list[dict[str, Any]]]:
            row = engine.account(account)
            return row.version, [v.summary() for v in engine.versions(account, limit, before)]

        version, versions = await on_rules(service, run)
        return answer({"account": account, "current": version, "versions": versions}, version)

    @read(f"{prefix}/versions/{{number}}", answer=VersionDocument)
    async def get_version(account: str, number: Annotated[int, Path(ge=1)]) -> JSONResponse:
        """One version: who published it, when, why, and the rules it made."""

        def run(engine: Engine) -> tuple[int, dict[str, Any]]:
            row = engine.account(account)
            kept = engine.store.rules_version(account, number)
            if kept is None:
                raise NotFound(f"account {account!r} has no rules version {number}")
            return row.version, {**kept.summary(), "rules": rulebook.loads(kept.content)}

        version, found = await on_rules(service, run)
        return answer(found, version)

    @read(f"{prefix}/versions/{{number}}/diff", answer=VersionDiff)
    async def get_version_diff(
        account: str,
        number: Annotated[int, Path(ge=1)],
        against: Annotated[int | None, Query(ge=0, description="The version before by default.")] = None,
    ) -> JSONResponse:
        """What a version changed from ``against``, field by field."""

        def run(engine: Engine) -> tuple[int, list[dict[str, Any]]]:
            return engine.account(account).version, engine.version_diff(account, number, against)

        version, changes = await on_rules(service, run)
        base = number - 1 if against is None else against
        return answer({"account": account, "version": number, "against": base, "changes": changes}, version)

    @write("POST", f"{prefix}/versions/{{number}}/restore", answer=Published)
    async def post_restore(
        account: str, number: Annotated[int, Path(ge=1)], request: Request, message: Message = None
    ) -> JSONResponse:
        """Publish an earlier version's rules again, as a new version that names it."""
        expected, author = if_match(request), _author(request)
        version = await on_rules(
            service, lambda e: e.restore(account, number, expected, author=author, message=message)
        )
        return answer({"account": account, "version": version}, version)

    # -- Drafts: edits gathered, previewed, then published as one version.

    @write("PUT", f"{prefix}/drafts/{{draft}}", RulebookDocument, answer=DraftDocument)
    async def put_draft(account: str, draft: Id, request: Request) -> JSONResponse:
        """Keep the whole rules document as a draft on the version in ``If-Match``, which
        must be the current one (412 otherwise: start from the current rules). Only its
        shape is checked (``bots`` and ``users`` lists of objects, ``settings`` an object),
        the rest when it is previewed or published."""
        data = _object(await read_json(request))
        _model(RulebookDocument, data)  # kept as sent: the model only checks the shape
        expected, author = if_match(request), _author(request)

        def run(engine: Engine) -> tuple[int, dict[str, Any]]:
            version = engine.account(account).version
            if version != expected:
                raise StaleVersion(account, expected, version)
            engine.save_draft(account, draft, data, expected, author=author)
            return version, _draft(engine.draft(account, draft))

        version, kept = await on_rules(service, run)
        return answer(kept, version)

    @read(f"{prefix}/drafts/{{draft}}", answer=DraftDocument)
    async def get_draft(account: str, draft: Id) -> JSONResponse:
        """The draft: its rules and the version it was started on."""
        version, kept = await on_rules(
            service, lambda e: (e.account(account).version, _draft(e.draft(account, draft)))
        )
        return answer(kept, version)

    @api("DELETE", f"{prefix}/drafts/{{draft}}", "manage", problems=WRITES, answer=DraftDeleted)
    async def delete_draft(account: str, draft: Id) -> JSONResponse:
        """Drop the draft (no If-Match: it publishes nothing)."""

        def run(engine: Engine) -> int:
            engine.draft(account, draft)
            engine.store.delete_draft(account, draft)
            return engine.account(account).version

        version = await on_rules(service, run)
        return answer({"account": account, "draft": draft, "deleted": True}, version)

    @write("POST", f"{prefix}/drafts/{{draft}}/publish", answer=Published)
    async def post_publish_draft(
        account: str, draft: Id, request: Request, message: Message = None
    ) -> JSONResponse:
        """Publish the draft as ONE version and drop it: 412 when the account moved on
        from the version it was started on (or the one in ``If-Match``)."""
        expected, author = if_match(request), _author(request)

        def run(engine: Engine) -> int:
            version = engine.account(account).version
            if version != expected:
                raise StaleVersion(account, expected, version)
            return engine.publish_draft(account, draft, author=author, message=message)

        version = await on_rules(service, run)
        return answer({"account": account, "version": version}, version)

    @api(
        "POST",
        f"{prefix}/drafts/{{draft}}/preview",
        "manage",
        body=PreviewRequest,
        problems={**WRITES, **BUSY},
        answer=Preview,
    )
    async def post_preview(account: str, draft: Id, request: Request) -> JSONResponse:
        """What the draft would do, writing nothing: (a) the what-if replay of the
        account's kept events of the window under the draft's rules, as ``POST
        .../replay`` answers it; (b) a dry run: the records of the account's latest
        decided events, as they are now, decided again under the draft's rules on the
        real store's rotation, caps and open records (``Engine.simulate``)."""
        wanted: PreviewRequest = _model(PreviewRequest, await read_json(request))
        since, until = window(wanted.since, wanted.until)
        async with slot.taken():

            def prepare(engine: Engine) -> tuple[int, int, Rules, list[Any], dict[str, Any]]:
                kept = engine.draft(account, draft)
                # Rules from a caller: durable-rules compiles them in a child first.
                rules = engine.check_rulebook(account, rulebook.loads(kept.content))
                try:
                    dry = dry_run(engine, account, rules, wanted.records)
                    events = read_window(engine.store, account, since, until)
                except BaseException:
                    rules.conditions.close()
                    raise
                return engine.account(account).version, kept.base_version, rules, events, dry

            version, base, rules, events, dry = await on_rules(service, prepare)
            try:
                result = await run_in_threadpool(_replay, rules, events, account, since, until)
            finally:
                rules.conditions.close()
        body = {
            "account": account,
            "draft": draft,
            "base_version": base,
            "replay": result,
            "dry_run": dry,
        }
        return answer(body, version)


def _draft(kept: Draft) -> dict[str, Any]:
    return {
        "account": kept.account,
        "draft": kept.draft,
        "base_version": kept.base_version,
        "author": kept.author,
        "changed_at": kept.changed_at,
        "rules": rulebook.loads(kept.content),
    }


def _replay(
    rules: Rules, events: list[Any], account: str, since: datetime, until: datetime
) -> dict[str, Any]:
    with candidate_engine(rules) as candidate:
        return replay(candidate, events, account, since, until).as_json()


def dry_run(engine: Engine, account: str, rules: Rules, count: int) -> dict[str, Any]:
    """The records of the account's latest ``count`` decided events, as the store has
    them now and with the owners they had before (their bot), decided again under
    ``rules`` by an engine sharing the worker's store: one rolled-back transaction
    (``Engine.simulate``). That engine is not closed: the store is the worker's."""
    latest = [outcome for _, outcome in engine.store.recent_outcomes(account, count) if outcome.decisions][
        ::-1
    ]
    events, actual = [], []
    for number, outcome in enumerate(latest, 1):
        stored = engine.store.get_record(account, outcome.entity, outcome.record_id)
        if stored is None:
            continue
        record = record_from_dict(stored).model_dump(mode="json")
        events.append(
            {
                "id": f"preview-{number}",
                "account": account,
                "kind": "created",
                "record": {**record, "owners": outcome.owners_before},
            }
        )
        actual.append(outcome)
    decided = Engine(rules, engine.store).simulate(events)
    changes, rejected = [], []
    for was, now in zip(actual, decided, strict=True):
        if isinstance(now, EventError):
            rejected.append({"event_id": was.event_id, "message": str(now)})
        elif now.owners_after != was.owners_after:
            changes.append(
                {
                    "event_id": was.event_id,
                    "entity": was.entity,
                    "record_id": was.record_id,
                    "actual": was.owners_after,
                    "draft": now.owners_after,
                    "draft_reason": why(now),
                }
            )
    return {"records": len(events), "changes": changes, "rejected": rejected}
