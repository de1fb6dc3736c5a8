"""``salesbot serve``: the engine behind an HTTP API, its webhooks, metrics and logs."""
