"""Writes examples/events.jsonl, the shipped example input: deals and persons whose Owner
is set to a bot, a few that the bots do not apply to, and one redelivered event.

    python examples/make_events.py > examples/events.jsonl
"""

import json
import random

rng = random.Random(7)
lines = []
for n in range(1, 241):
    value = rng.choice([800, 2500, 12000, 30000, 64000, 150000])
    bot = "bot:enterprise" if value >= 50000 and n % 2 else "bot:inbound"
    process = "Partners" if n % 40 == 0 else "Sales"
    lines.append(
        {
            "id": f"evt-{n:04d}",
            "kind": "created",
            "record": {
                "entity": "deal",
                "id": f"deal-{n:04d}",
                "title": f"Deal #{n}",
                "process": process,
                "value": value,
                "company": f"company-{n % 25:02d}",
                "owners": [bot],
            },
        }
    )
for n in range(1, 31):
    lines.append(
        {
            "id": f"evt-p{n:03d}",
            "kind": "created",
            "record": {
                "entity": "person",
                "id": f"person-{n:03d}",
                "name": f"Contact {n}",
                "owners": ["bot:partners"],
            },
        }
    )
lines.append(dict(lines[0]))  # a webhook delivered twice: answered from the log
for line in lines:
    print(json.dumps(line, ensure_ascii=False))
