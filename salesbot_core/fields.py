"""Ruleset fields that plugins own: the sections a plugin adds to a bot or a user.

The core models (``Bot``, ``User``) hold what the core itself needs. A plugin that reads
more from a ruleset (a user's capacity caps, a bot's sticky switch) declares it with a
``FieldSpec`` from the ``salesbot_ruleset_fields`` hook, as pytest plugins declare their
command-line options: the admin writes the same keys in the same places, the loader
validates each section through the model of the plugin that owns it, and the plugin reads
the validated value back with ``FieldSpec.get``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, cast

from pydantic import TypeAdapter

if TYPE_CHECKING:  # for type checkers only: the catalog is made of these specs
    from .catalog import Catalog
    from .models import Bot, User

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

#: Where a field is written: in a ``users`` entry or in a ``bots`` entry.
Place = Literal["user", "bot"]


@dataclass(frozen=True, eq=False)
class FieldSpec(Generic[T]):
    """A key a plugin adds to each user or each bot of a ruleset file.

    ``type`` is anything pydantic validates (a model, ``bool``, ``list[Absence]``,
    ``Caps | None``); ``default`` is the value of a bot or user that does not write the
    key. ``check(value, owner, catalog)`` returns more problems, for rules that need the
    bot or what other plugins provide (a sticky bot's entity must link to a company).
    """

    place: Place
    key: str
    type: Any
    default: T
    description: str = ""
    check: Callable[[T, Any, Catalog], list[str]] | None = None
    #: Users who set this field get their assignments per calendar period (day, week and
    #: month in the user's time zone) counted into ``context.usage`` inside the event's
    #: transaction, like ``Strategy.needs_load``: the count is only paid for when used.
    counts_usage: bool = False
    #: Which counts a set value needs, among ``salesbot_core.periods.USAGE_KINDS``
    #: (calendar periods, rolling windows such as ``last_30_days``, ``open`` for the open
    #: records the user owns now); left out, the calendar periods. Only what some field
    #: of the user asks for is counted.
    usage_kinds: Callable[[Any], Iterable[str]] | None = None
    #: The most of each usage kind a set value allows (``{"day": 5}``): what the admin
    #: page shows beside the user's counts. Left out, the page shows no limit.
    usage_limits: Callable[[Any], Mapping[str, int]] | None = None
    #: Bot fields only: the ``where`` conditions inside a value, by their path under the
    #: key (``{"bartek.where": {...}}``). The loader checks and compiles them with the
    #: bots' own, on the same evaluator (a problem names ``<key>.<path>``), and a hook
    #: tests one on the record with ``context.matches(bot, key, path)``.
    conditions: Callable[[Any], Mapping[str, Mapping[str, Any]]] | None = None
    #: Bot fields only: the ids of other bots a value names, by their path under the key
    #: (``{"then": "overflow"}``). The loader checks, once every file is read, that each is
    #: a bot of the same account (a problem names ``<key>.<path>``).
    bot_refs: Callable[[Any], Mapping[str, str]] | None = None
    #: Bot fields only: a bot that sets this field may get due items (``salesbot_due``).
    #: An event in an account none of whose bots sets such a field reads no due item of
    #: its record (``salesbot_sla_met`` is not asked): deadlines cost only where they exist.
    sets_deadlines: bool = False
    _adapter: TypeAdapter[Any] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_adapter", TypeAdapter(self.type))

    def validate(self, raw: Any) -> T:
        """The value as the plugin reads it; pydantic's ``ValidationError`` if invalid."""
        return cast(T, self._adapter.validate_python(raw))

    def get(self, owner: Bot | User) -> T:
        """This field of a loaded bot or user: its validated value, or ``default``."""
        # The private dict itself, not the read-only view ``plugin_fields`` makes per call:
        # plugins ask once per candidate per event.
        # No ``typing.cast`` either: a function call of its own, per candidate.
        values: dict[str, T] = owner.__pydantic_private__["_plugin_fields"]  # type: ignore[index]
        return values.get(self.key, self.default)


#: The attribute ``answers_for`` sets on a hook implementation: the ``(place, key)`` of
#: each field it reads.
ANSWERS_FOR = "salesbot_answers_for"


def answers_for(*specs: FieldSpec[Any]) -> Callable[[F], F]:
    """Declare that a hook implementation answers (returns anything but ``None``) only for
    a bot, or a user, that sets one of ``specs`` in its ruleset (to a value other than
    ``None``). The decision then leaves it out for the bots and pool members that set none
    of them: a plugin of caps is not asked about each candidate of each event when no
    user has caps. Per bot and user hooks only (``salesbot_bot_applies``,
    ``salesbot_skip_candidate``, ``salesbot_user_available``,
    ``salesbot_prefer_candidates``, ``salesbot_preselect``); an implementation that
    declares nothing is always called. Stack it with ``hookimpl``, in either order::

        @hookimpl
        @answers_for(CAPS)
        def salesbot_skip_candidate(bot, record, user, context): ...
    """
    fields = frozenset((spec.place, spec.key) for spec in specs)

    def mark(function: F) -> F:
        setattr(function, ANSWERS_FOR, fields)
        return function

    return mark


def fields_set(place: Place, owner: Bot | User) -> frozenset[tuple[str, str]]:
    """The ``(place, key)`` of each plugin field ``owner`` sets to a value other than
    ``None``: what ``answers_for`` is matched against."""
    return frozenset((place, key) for key, value in owner.plugin_fields.items() if value is not None)
