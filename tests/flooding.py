"""A noisy account's client, run as a process of its own by ``test_fairness`` (so that its
threads never hold the measuring client's interpreter lock), on the standard library's
``http.client`` (a tenth of httpx's work per request: the flood should load the server,
not the machine the test shares with it): it sends events to
``salesbot serve`` at a fixed rate over several keep-alive connections, every fifth
request a batch, and prints one JSON line per request: the event ids it carried and the
status it got, and the event ids the answer says were decided.

    python flooding.py BASE_URL TOKEN ACCOUNT RATE SECONDS PREFIX

It prints ``started`` once its connections are made, and stops by itself after
``SECONDS`` (loopback only: ``BASE_URL`` is the test's own server).
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from urllib.parse import urlsplit

CONNECTIONS = 4
BATCH_EVERY = 5
BATCH_SIZE = 3


def event(event_id: str) -> dict[str, object]:
    return {
        "id": event_id,
        "kind": "created",
        "record": {"entity": "deal", "id": event_id, "owners": ["bot:inbound"]},
    }


def main(base: str, token: str, account: str, rate: float, seconds: float, prefix: str) -> None:
    url = f"/v1/accounts/{account}/events"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    where = urlsplit(base)
    clients = [http.client.HTTPConnection(where.hostname, where.port, timeout=30) for _ in range(CONNECTIONS)]

    def post(client: http.client.HTTPConnection, path: str, body: object) -> tuple[int, dict[str, object]]:
        client.request("POST", path, json.dumps(body), headers)
        answer = client.getresponse()
        return answer.status, json.loads(answer.read())

    lock = threading.Lock()
    lines: list[str] = []
    print("started", flush=True)
    start = time.monotonic()

    def send(n: int) -> None:
        # Connection n sends requests n, n + CONNECTIONS, ...: together RATE a second.
        client, k = clients[n], n
        while (due := start + k / rate) < start + seconds:
            time.sleep(max(0.0, due - time.monotonic()))
            name = f"{prefix}-{k}"
            if k % BATCH_EVERY == 0:
                ids = [f"{name}-{i}" for i in range(BATCH_SIZE)]
                status, body = post(client, f"{url}:batch", {"events": [event(i) for i in ids]})
            else:
                ids = [name]
                status, body = post(client, url, event(name))
            # What was decided: each event's outcome, or the whole 429 (none of them).
            results = body.get("results")
            if isinstance(results, list):
                decided = [r.get("outcome", {}).get("event_id") for r in results]
            else:
                decided = [body.get("event_id")]
            line = json.dumps({"ids": ids, "status": status, "decided": decided})
            with lock:
                lines.append(line)
            k += CONNECTIONS

    threads = [threading.Thread(target=send, args=(n,)) for n in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - start
    for client in clients:
        client.close()
    print("\n".join(lines))
    print(json.dumps({"elapsed": elapsed}), flush=True)


if __name__ == "__main__":
    base, token, account, rate, seconds, prefix = sys.argv[1:]
    main(base, token, account, float(rate), float(seconds), prefix)
