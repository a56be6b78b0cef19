"""The dev UI under /ui, driven in-process through httpx's ASGI transport: each page
renders what the engine holds, and the forms send, cancel, rerun and replay."""

from __future__ import annotations

import base64
import datetime
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

import eventbus
from eventbus.server import create_app
from eventbus.stores import SqliteStore
from tests.helpers import make_client, on

pytestmark = pytest.mark.anyio

T0 = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)


def shop(**options: Any) -> tuple[eventbus.Inngest, httpx.AsyncClient]:
    client = make_client()
    broken = [True]

    @client.create_function(fn_id="receipt", trigger=on("shop/paid", "event.data.cents > 0"))
    async def receipt(ctx: eventbus.Context) -> dict[str, Any]:
        pdf = await ctx.step.run("render", lambda cents: f"r-{cents}.pdf", ctx.event.data["cents"])
        return {"pdf": pdf}

    @client.create_function(fn_id="charge", retries=0, trigger=on("shop/paid"))
    async def charge(ctx: eventbus.Context) -> str:
        def bank() -> str:
            if broken[0]:
                raise ConnectionError("<the bank> is down")
            return "ch_1"

        return await ctx.step.run("bank", bank)

    @client.create_function(fn_id="remind", trigger=on("shop/cart"))
    async def remind(ctx: eventbus.Context) -> None:
        await ctx.step.sleep("a-day", "1d")

    client.broken = broken  # type: ignore[attr-defined]
    app = create_app(client, **options)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
    return client, http


def csrf_of(page: str) -> str:
    found = re.search(r'name=csrf value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


async def test_pages_show_events_runs_steps_and_functions() -> None:
    client, http = shop()
    async with client, http:
        (paid,) = await client.send({"name": "shop/paid", "data": {"cents": 250}})
        (free,) = await client.send({"name": "shop/paid", "data": {"cents": 0}})
        await client.settle()
        assert (await http.get("/ui")).headers["location"] == "/ui/events"
        events = await http.get("/ui/events")
        assert events.status_code == 200
        assert events.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in events.headers["content-security-policy"]
        assert paid in events.text
        assert free in events.text
        assert "inngest/function.finished" in events.text
        only = await http.get("/ui/events", params={"name": "shop/paid"})
        assert "inngest/function.finished</a>" not in only.text
        event = (await http.get(f"/ui/events/{paid}")).text
        assert "&quot;cents&quot;: 250" in event
        free_page = (await http.get(f"/ui/events/{free}")).text
        # The engine's own decision, as explain() gives it; non-matching names left out.
        assert "test-app-receipt: expression false (event.data.cents &gt; 0)" in free_page
        assert "no trigger matched" not in free_page
        runs = {run.function.local_id: run for run in client.runs(event_id=paid)}
        listed = (await http.get("/ui/runs", params={"status": "Failed"})).text
        assert runs["charge"].run_id in listed
        assert runs["receipt"].run_id not in listed
        by_function = (await http.get("/ui/runs", params={"function": "test-app-receipt"})).text
        assert runs["receipt"].run_id in by_function
        assert runs["charge"].run_id not in by_function
        receipt = (await http.get(f"/ui/runs/{runs['receipt'].run_id}")).text
        assert "render" in receipt
        assert "r-250.pdf" in receipt
        assert "<th>Input</th>" in receipt
        assert "250\n  ],\n  {}" in receipt  # the step's arguments, [[250], {}]
        assert "inngest/function.finished" in receipt  # the system events it sent
        failed = (await http.get(f"/ui/runs/{runs['charge'].run_id}")).text
        assert "&lt;the bank&gt; is down" in failed  # escaped, never raw HTML
        assert "<the bank>" not in failed
        functions = (await http.get("/ui/functions")).text
        assert "event.data.cents &gt; 0" in functions
        assert "test-app-remind" in functions
        assert (await http.get("/ui/nothing-here")).status_code == 404
        assert (await http.get("/ui/runs/not-a-run")).status_code == 404


async def test_the_forms_send_cancel_rerun_and_replay() -> None:
    client, http = shop()
    async with client, http:
        form = await http.get("/ui/send")
        token = csrf_of(form.text)
        sent = await http.post(
            "/ui/send",
            data={"csrf": token, "name": "shop/cart", "data": '{"cart": 1}'},
        )
        assert sent.status_code == 303
        event_id = sent.headers["location"].rsplit("/", 1)[1]
        await client.settle()
        (sleeping,) = client.runs(event_id=event_id)
        assert sleeping.status is eventbus.RunStatus.SLEEPING
        page = (await http.get(f"/ui/runs/{sleeping.run_id}")).text
        assert "sleeps until" in page
        assert "Cancel" in page
        cancelled = await http.post(f"/ui/runs/{sleeping.run_id}/cancel", data={"csrf": token})
        assert cancelled.status_code == 303
        assert sleeping.status is eventbus.RunStatus.CANCELLED
        rerun = await http.post(f"/ui/runs/{sleeping.run_id}/rerun", data={"csrf": token})
        new_id = rerun.headers["location"].rsplit("/", 1)[1]
        await client.settle()
        assert client.get_run(new_id).rerun_of == sleeping.run_id  # type: ignore[union-attr]
        again = await http.post(f"/ui/runs/{new_id}/rerun", data={"csrf": token})
        assert again.status_code == 409  # it is asleep: only an ended run can be rerun
        assert "only an ended run can be rerun" in again.text
        (paid,) = await client.send({"name": "shop/paid", "data": {"cents": 0}})
        await client.settle()
        client.broken[0] = False  # type: ignore[attr-defined]
        replayed = await http.post(
            "/ui/replay", data={"csrf": token, "function": "test-app-charge"}
        )
        assert replayed.headers["location"] == "/ui/runs"
        await client.settle()
        outputs = [r.output for r in client.runs(event_id=paid) if r.rerun_of is not None]
        assert outputs == ["ch_1"]
        bad = await http.post("/ui/replay", data={"csrf": token, "function": "nope"})
        assert bad.status_code == 400
        assert (await http.post("/ui/runs/x/explode", data={"csrf": token})).status_code == 404


async def test_a_bad_test_event_shows_the_error_and_keeps_the_form() -> None:
    client, http = shop()
    async with client, http:
        token = csrf_of((await http.get("/ui/send")).text)
        not_json = await http.post("/ui/send", data={"csrf": token, "name": "a/b", "data": "{"})
        assert not_json.status_code == 400
        assert "not valid JSON" in not_json.text
        reserved = await http.post(
            "/ui/send", data={"csrf": token, "name": "inngest/x", "data": "{}"}
        )
        assert "is reserved" in reserved.text
        assert 'value="inngest/x"' in reserved.text  # the form keeps what was typed
        assert client.events() == []


async def test_actions_need_the_pages_token() -> None:
    client, http = shop()
    async with client, http:
        refused = await http.post("/ui/send", data={"name": "shop/cart", "data": "{}"})
        assert refused.status_code == 403
        forged = await http.post("/ui/send", data={"csrf": "guess", "name": "a/b"})
        assert forged.status_code == 403
        assert client.events() == []


async def test_keys_protect_the_ui() -> None:
    client, http = shop(signing_key="signkey-test-abc123", event_keys=["ek1"])
    async with client, http:
        anonymous = await http.get("/ui/events")
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"].startswith("Basic")

        def basic(password: str) -> dict[str, str]:
            token = base64.b64encode(f"me:{password}".encode()).decode()
            return {"authorization": f"Basic {token}"}

        assert (await http.get("/ui/events", headers=basic("wrong"))).status_code == 401
        assert (await http.get("/ui/events", headers=basic("ek1"))).status_code == 200
        ok = await http.get("/ui/events", headers=basic("signkey-test-abc123"))
        assert ok.status_code == 200
        not_basic = {"authorization": "Bearer signkey-test-abc123"}
        assert (await http.get("/ui/events", headers=not_basic)).status_code == 401
        garbage = {"authorization": "Basic !!!"}
        assert (await http.get("/ui/events", headers=garbage)).status_code == 401


async def test_without_a_running_engine_the_ui_says_so() -> None:
    client, http = shop()
    async with http:
        answer = await http.get("/ui/events")
    assert answer.status_code == 503
    assert "not running" in answer.text
    del client


async def test_what_else_the_pages_explain_and_refuse() -> None:
    client = make_client()

    @client.create_function(
        fn_id="later", trigger=on("app/e"), debounce=eventbus.Debounce(period="1m")
    )
    async def later(ctx: eventbus.Context) -> None:
        return None

    @client.create_function(fn_id="once", trigger=on("app/e"))
    async def once(ctx: eventbus.Context) -> None:
        await ctx.step.wait_for_event("paid", event="app/paid", timeout="1h")

    app = create_app(client, max_body_bytes=64)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
    async with client, http:
        (first,) = await client.send({"name": "app/e", "id": "same"})
        (again,) = await client.send({"name": "app/e", "id": "same"})
        await client.settle()
        held = (await http.get(f"/ui/events/{first}")).text
        assert "test-app-later: debounced (a run with the latest event at" in held
        duplicate = (await http.get(f"/ui/events/{again}")).text
        assert f"test-app-once: deduplicated ({first})" in duplicate
        (waiting,) = client.runs(function_id="test-app-once")
        timeline = (await http.get(f"/ui/runs/{waiting.run_id}")).text
        assert "waits until" in timeline
        assert "for app/paid" in timeline
        too_big = await http.post("/ui/send", content=b"x" * 1000)
        assert too_big.status_code == 400
        assert (await http.put("/ui/events")).status_code == 405


async def test_replay_takes_a_time_range_and_the_ui_reads_a_durable_store(
    tmp_path: Path,
) -> None:
    clock = eventbus.VirtualClock(T0)
    client = eventbus.Inngest("shop", clock=clock, store=SqliteStore(tmp_path / "ui.db"))
    broken = [True]

    @client.create_function(fn_id="charge", retries=0, trigger=on("shop/paid"))
    async def charge(ctx: eventbus.Context) -> str:
        if broken[0]:
            raise ConnectionError("down")
        return "ok"

    app = create_app(client)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
    async with client, http:
        await client.send({"name": "shop/paid", "data": {"n": 1}})
        await client.settle()
        clock.advance(datetime.timedelta(hours=2))
        await client.send({"name": "shop/paid", "data": {"n": 2}})
        await client.settle()
        broken[0] = False
        functions = (await http.get("/ui/functions")).text
        assert "datetime-local" in functions
        token = csrf_of(functions)
        since = (T0 + datetime.timedelta(hours=1)).replace(tzinfo=None).isoformat()
        answer = await http.post(
            "/ui/replay", data={"csrf": token, "function": "shop-charge", "since": since}
        )
        assert answer.status_code == 303
        await client.settle()
        replayed = [r for r in client.runs() if r.rerun_of is not None]
        assert [r.event.data["n"] for r in replayed] == [2]
        bad = await http.post(
            "/ui/replay", data={"csrf": token, "function": "shop-charge", "until": "soon"}
        )
        assert bad.status_code == 400
        assert "is not a date and time" in bad.text
        runs = (await http.get("/ui/runs")).text
        assert runs.count("shop-charge</td>") == 3


async def test_events_before_the_ui_are_explained_from_the_configuration() -> None:
    """An engine that ran before the UI existed kept no decisions: the event page says
    why from the functions' triggers and flow control instead."""
    client = make_client()

    @client.create_function(fn_id="big", trigger=on("app/e", "event.data.n > 5"))
    async def big(ctx: eventbus.Context) -> None:
        return None

    @client.create_function(
        fn_id="calm", trigger=on("app/e"), debounce=eventbus.Debounce(period="1m")
    )
    async def calm(ctx: eventbus.Context) -> None:
        return None

    @client.create_function(fn_id="plain", trigger=on("app/e"))
    async def plain(ctx: eventbus.Context) -> None:
        return None

    async with client:
        (first,) = await client.send({"name": "app/e", "id": "k", "data": {"n": 1}})
        (again,) = await client.send({"name": "app/e", "id": "k", "data": {"n": 1}})
        await client.settle()
        app = create_app(client)  # made now: decisions are kept from here on
        assert client.engine.explain is not None  # type: ignore[union-attr]
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        async with http:
            page = (await http.get(f"/ui/events/{first}")).text
            assert "test-app-big: its trigger expression was not true: event.data.n &gt; 5" in page
            assert "test-app-calm: its flow control holds or skips events: debounce" in page
            duplicate = (await http.get(f"/ui/events/{again}")).text
            assert "deduplicated: an event with this id arrived within 24 hours" in duplicate
            (later,) = await client.send({"name": "app/e", "data": {"n": 9}})
            await client.settle()
            recorded = (await http.get(f"/ui/events/{later}")).text
            assert "test-app-calm: debounced" in recorded


def test_the_uis_decision_record_keeps_the_newest_events() -> None:
    from eventbus._harness import Explain

    explain = Explain(limit=2)
    for n in range(4):
        explain.add(f"e{n}", ("f", "started run", f"r{n}"))
        explain.first_seen(f"id{n}", f"e{n}")
    explain.add("e3", ("g", "deduplicated", "e0"))
    assert list(explain.decisions) == ["e2", "e3"]
    assert explain.decisions["e3"] == [("f", "started run", "r3"), ("g", "deduplicated", "e0")]
    assert list(explain.first_with_id) == ["id2", "id3"]
