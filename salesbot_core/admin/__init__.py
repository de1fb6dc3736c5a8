"""The admin page served by ``salesbot serve`` at ``/``: see and switch the bots, the
distribution as charts, every "why", dry runs, the live feed and failed deliveries.

Server-rendered Jinja2 templates (autoescaped) with a little plain JavaScript for the
live feed; everything works without it. A strict Content-Security-Policy allows only the
page's own scripts and styles (no inline ones). Sign-in takes an admin token or an account
token with the ``manage`` scope (``sessions`` keeps the session in a signed cookie that
never holds the token); an account token never sees another account: its pages are 404.

Every page reads what it shows in one call into the engine (``Service.call``): the reads
are in ``reads``, HTTP in ``views``, the charts' geometry in ``charts``.
"""

from __future__ import annotations

from .views import install

__all__ = ["install"]
