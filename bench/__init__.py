"""salesbot's benchmark suite: ``python -m bench`` (``--help`` for the options).

Every figure is printed beside a baseline measured in the same run, with their ratio
(salesbot's cost over the baseline's: above 1 is slower or bigger), and every figure is
the median of ``--repeat`` repetitions (default 3). The table is printed with rich and
written as JSON to ``bench/results/latest.json`` (git-ignored).

- ``per_event``: one event through ``Engine.handle`` on SQLite (FULL and NORMAL) against
  hand-written raw sqlite3 doing the same writes (``bench.raw_sqlite``).
- ``list_operation``: ``Engine.assign_list`` over 100,000 stored deals, batches of 500,
  against raw sqlite3 in the same batches.
- ``bots_scale``: load time and per-event cost with 1 to 10,000 bots, against 1 bot.
- ``memory``: RSS over 1,000,000 events through one engine (long: about 15 minutes).
- ``postgres_workers``: 1 and 2 worker processes on one PostgreSQL (``--pg URL``), against
  an atomic raw psycopg router (one statement, one round trip an event).
"""
