"""The words and defaults a user types on the command line: entity names, token scopes,
the default rulesets folder and store. Kept free of imports, so that ``salesbot --help``
and each command's options cost click alone; the modules that own each concept
(``models``, ``conditions``, ``tokens``, ``engine``, ``simulate``) take them from here.
"""

from __future__ import annotations

from typing import Literal

EntityType = Literal["deal", "person", "company", "task"]
ENTITIES: tuple[EntityType, ...] = ("deal", "person", "company", "task")

#: The condition evaluators, by the name the setting uses.
EVALUATORS = ("durable", "python")
#: The environment variable choosing the evaluator when no argument does.
EVALUATOR_VARIABLE = "SALESBOT_CONDITIONS"

#: The plans an operator sets an account to (``models.PLANS`` says what each allows).
PLAN_NAMES = ("automation", "growth", "professional")
#: The plan of an account created without one.
DEFAULT_PLAN = "professional"

#: Every token scope, in the order they are listed.
SCOPES = ("events", "read", "manage")
#: The account of an admin token.
ADMIN_ACCOUNT = "*"

DEFAULT_RULESETS = "rulesets"
DEFAULT_STORE = "salesbot.db"
#: The most notifications one ``Engine.outbox`` call returns.
MAX_OUTBOX_LIMIT = 10_000
#: How many synthetic records ``simulate`` makes when given no records.
DEFAULT_SIMULATE_COUNT = 100

#: The webhook retry schedule's settings (``http.delivery.RetrySchedule``): field ->
#: (environment variable, type, lowest, highest). ``salesbot serve`` and ``salesbot
#: deliver`` take them as options too.
SCHEDULE_SETTINGS: dict[str, tuple[str, type, float, float]] = {
    "attempts": ("SALESBOT_WEBHOOK_ATTEMPTS", int, 1, 100),
    "first": ("SALESBOT_WEBHOOK_FIRST_WAIT", float, 0.001, 86_400),
    "cap": ("SALESBOT_WEBHOOK_MAX_WAIT", float, 0.001, 7 * 86_400),
}

#: An account's rate limit: ``salesbot serve``'s defaults are read from these variables
#: (``--rate-limit``, ``--rate-burst``), and both rates and bursts go up to ``MAX_RATE``.
RATE_LIMIT_VARIABLE = "SALESBOT_RATE_LIMIT"
RATE_BURST_VARIABLE = "SALESBOT_RATE_BURST"
MAX_RATE = 1_000_000
