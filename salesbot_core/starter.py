"""The rulesets folder ``salesbot init`` writes: one account, a few users and one bot,
every common option shown but commented out, valid as written."""

from __future__ import annotations

from pathlib import Path

from .errors import SalesbotError

__all__ = ["STARTER_FILES", "write_starter"]

#: The schema file the editor comment points to.
SCHEMA_FILE = "salesbot.schema.json"

STARTER = f"""\
# yaml-language-server: $schema={SCHEMA_FILE}
# The line above lets an editor check this file against salesbot's JSON Schema:
# generate it with `salesbot schema > {SCHEMA_FILE}` in this folder.
#
# A rulesets folder to start from. Check it with `salesbot validate -r <this folder>`;
# every field is described in the README, "Ruleset reference". Lines starting with "#"
# are options shown with an example value: remove the "#" to use one.
account: default
# settings:
#   enabled: true            # the Sales Bot add-on is switched on for this account
#   plan: professional       # automation | growth | professional
#   multiple_owners: false   # records may have several owners

users:
  - id: anna
    name: Anna Nowak
    # email: anna@example.com
    # timezone: Europe/Warsaw      # for working hours, absences and caps (default UTC)
    # working_hours: {{days: [mon, tue, wed, thu, fri], start: "09:00", end: "17:00"}}
    # caps: {{day: 10, week: 40, month: 150}}   # most records per calendar period
  - id: bartek
    name: Bartek Wiśniewski
  - id: celina
    name: Celina Zając
    # active: false                # a deactivated user stays in pools but gets nothing

bots:
  # Set a deal's Owner to "bot:inbound": the bot replaces it with one of its users.
  - id: inbound
    name: Inbound leads
    entity: deal                   # deal | person | company | task
    users: [anna, bartek, celina]  # the pool
    strategy: round_robin          # round_robin | weighted_round_robin | least_loaded
    # active: true                 # false: the bot never fires
    # fallback: anna               # gets the record when nobody in the pool is eligible
    # sticky: false                # true: a deal goes to its company's owner if in the pool
    # priority: 0                  # routing without a bot: lower tries first
    # trigger:
    #   events: [created, updated, list]   # default: all three
    #   processes: [Sales]                 # deals only; omitted = every sales process
    #   where: {{$gte: {{value: 10000}}}}      # a durable-rules condition on the record
    # actions:
    #   related: {{company: true}}           # pass the owner on to the deal's company
    #   tag: inbound-bot                   # added to every record the bot assigned
    #   note: "Assigned by {{bot.name}} to {{owner.name}}"
    #   notify: "New deal for you: {{record.title}}"
"""

#: File name -> text, as ``salesbot init`` writes them.
STARTER_FILES = {"salesbot.yaml": STARTER}


def write_starter(folder: Path) -> list[Path]:
    """Write ``STARTER_FILES`` into ``folder`` (created if missing) and return their paths.

    Nothing is overwritten: if any of the files exists, ``SalesbotError`` names it and
    nothing is written."""
    paths = [folder / name for name in STARTER_FILES]
    existing = [path for path in paths if path.exists() or path.is_symlink()]
    if existing:
        raise SalesbotError(f"{existing[0]} exists: salesbot init overwrites nothing (pick another folder)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for path, text in zip(paths, STARTER_FILES.values(), strict=True):
            with path.open("x", encoding="utf-8") as f:  # "x": never over a file made meanwhile
                f.write(text)
    except OSError as exc:
        raise SalesbotError(f"cannot write {folder}: {exc.strerror or exc}") from None
    return paths
