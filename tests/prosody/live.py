"""XMPP clients that stay connected while the groups file changes.

Each client keeps the roster as RFC 6121 says a client must: the roster it
fetched at login, then every roster push applied in order.  It also records
the last presence it received from every full JID.  The clients share one
asyncio loop that runs in a thread of its own, so that a test can run
ldapsync (and Prosody's reload) in the main thread while the clients go on
receiving."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

from tests.prosody.server import HOST, PASSWORD, _roster_items

ROSTER_NS = "{jabber:iq:roster}"


class ClientLoop:
    """One asyncio loop in a thread, for every client of a test."""

    def __init__(self) -> None:
        # Imported here, in the main thread: CPython 3.11 can fail to compile
        # modules that two threads import at once (pytest rewrites asserts).
        import slixmpp  # noqa: F401 - test dependency
        import slixmpp.features  # noqa: F401

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="xmpp-clients", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        """Stop the loop once every task ended.  The loop is not closed:
        slixmpp's streams still schedule their cleanup on it when collected."""
        self.run(_cancel_other_tasks(), 20)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


async def _all(coros) -> None:
    await asyncio.gather(*coros)


async def _cancel_other_tasks() -> None:
    tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class LiveClient:
    """A logged-in session of username@HOST/resource that follows its roster."""

    def __init__(self, loop: ClientLoop, port: int, username: str, resource: str = "live") -> None:
        self.loop = loop
        self.port = port
        self.jid = f"{username}@{HOST}/{resource}"
        self.roster: dict[str, dict] = {}
        self.presence: dict[str, str] = {}  # full JID -> "available" / "unavailable" / other types
        self.pushes = 0
        self.last_push = 0.0  # time.monotonic() of the last push
        self.lock = threading.Lock()
        self.client: Any = None

    def connect(self, timeout: float = 20) -> LiveClient:
        self.loop.run(self._connect(timeout), timeout + 10)
        return self

    @staticmethod
    def connect_many(clients: list[LiveClient], at_once: int = 50, timeout: float = 60) -> None:
        """Log in many clients, ``at_once`` logins at a time."""
        for start in range(0, len(clients), at_once):
            batch = clients[start:start + at_once]
            batch[0].loop.run(_all(c._connect(timeout) for c in batch), timeout + 10)

    def close(self) -> None:
        if self.client is not None:
            self.loop.run(self._close(), 20)
            self.client = None

    def items(self) -> list[dict]:
        """The roster as the client holds it, in the shape of ``ldapsync preview --json``."""
        with self.lock:
            return sorted((dict(item) for item in self.roster.values()), key=lambda i: i["jid"])

    def available(self) -> set[str]:
        """The bare JIDs this client currently sees online."""
        with self.lock:
            return {full.split("/")[0] for full, kind in self.presence.items() if kind == "available"}

    def wait_for(self, condition: Callable[[LiveClient], bool], timeout: float = 10) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition(self):
                return True
            time.sleep(0.02)
        return condition(self)

    async def _connect(self, timeout: float) -> None:
        import slixmpp  # test dependency

        client = slixmpp.ClientXMPP(self.jid, PASSWORD)
        client.enable_starttls = False
        client.enable_direct_tls = False
        client.enable_plaintext = True
        client.plugin["feature_mechanisms"].unencrypted_plain = True
        ready: asyncio.Future = asyncio.get_running_loop().create_future()

        async def on_session_start(_event) -> None:
            try:
                reply = await client.make_iq_get(queryxmlns="jabber:iq:roster").send(timeout=timeout)
                with self.lock:
                    self.roster = {item["jid"]: item for item in _roster_items(reply.xml)}
                client.send_presence()
                if not ready.done():
                    ready.set_result(None)
            except Exception as exc:  # surfaced to connect()
                if not ready.done():
                    ready.set_exception(exc)

        def on_failure(event) -> None:
            if not ready.done():
                ready.set_exception(RuntimeError(f"XMPP login of {self.jid} failed: {event}"))

        def on_push(iq) -> None:
            if iq["type"] != "set":
                return
            with self.lock:
                for item in _roster_items(iq.xml):
                    if item["subscription"] == "remove":
                        self.roster.pop(item["jid"], None)
                    else:
                        self.roster[item["jid"]] = item
                self.pushes += 1
                self.last_push = time.monotonic()

        def on_presence(presence) -> None:
            with self.lock:
                self.presence[str(presence["from"])] = presence["type"] if presence["type"] in (
                    "unavailable", "subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe", "error"
                ) else "available"

        client.add_event_handler("session_start", on_session_start)
        client.add_event_handler("failed_all_auth", on_failure)
        client.add_event_handler("connection_failed", on_failure)
        client.add_event_handler("roster_update", on_push)
        client.add_event_handler("presence", on_presence)
        client.connect("127.0.0.1", self.port)
        self.client = client
        await asyncio.wait_for(ready, timeout)

    async def _close(self) -> None:
        self.client.disconnect()
        with contextlib.suppress(TimeoutError, Exception):
            await asyncio.wait_for(self.client.disconnected, 10)

