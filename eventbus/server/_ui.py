"""The dev UI: server-rendered pages of an engine's events, runs, step timelines and
functions, with forms to send a test event, cancel a run and rerun or replay runs.

Plain HTML and a few lines of plain JavaScript (no build step, nothing fetched from
elsewhere): every page refreshes its ``<main>`` in place every two seconds, so new events
and run changes appear without reloading. Served under ``/ui`` by ``create_app``.
"""

from __future__ import annotations

import datetime
import html
import json
import secrets
import urllib.parse
from typing import TYPE_CHECKING

from .._errors import EventbusError, UsageError
from .._event import prepare_batch
from .._harness import Explain
from .._run import RunStatus, StepStatus

if TYPE_CHECKING:
    from .._client import Inngest
    from .._engine import Engine
    from .._event import StoredEvent
    from .._function import Function
    from .._run import Run, StepRecord

#: How many rows a list page shows at most (newest first).
PAGE_ROWS = 200
#: Events whose decisions (each function's: started, deduplicated, expression false,
#: rate limited, ...) an engine keeps for the event pages.
EXPLAIN_EVENTS = 10_000

_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d1d1f;background:#fafafa}
header{background:#1d1d1f;color:#fff;padding:.6em 1.2em;display:flex;gap:1.4em;align-items:center}
header a{color:#ddd;text-decoration:none}header a:hover{color:#fff}header b{margin-right:1em}
main{padding:1em 1.2em}table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:.35em .6em;border-bottom:1px solid #e5e5e5;vertical-align:top}
th{background:#f0f0f0}pre{background:#f4f4f4;padding:.6em;overflow:auto;margin:.2em 0}
.Completed{color:#127a2a}.Failed{color:#b3261e}.Cancelled{color:#8a6d00}
.Running,.Queued,.Sleeping,.Waiting{color:#1a5fb4}
form.inline{display:inline}.error{color:#b3261e;font-weight:600}.note{color:#666}
textarea{width:100%;font-family:monospace}input,select,button{font-size:14px}
"""

#: Every two seconds, fetch the page again and swap its <main> in (no reload); a form
#: being edited is left alone.
_LIVE = """
setInterval(async () => {
  const active = document.activeElement;
  if (active && (active.tagName === "TEXTAREA" || active.tagName === "INPUT")) return;
  try {
    const answer = await fetch(location.href, {credentials: "same-origin"});
    if (!answer.ok) return;
    const page = new DOMParser().parseFromString(await answer.text(), "text/html");
    const fresh = page.querySelector("main"), shown = document.querySelector("main");
    if (fresh && shown && fresh.innerHTML !== shown.innerHTML) shown.innerHTML = fresh.innerHTML;
  } catch (e) {}
}, 2000);
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _json(value: object) -> str:
    return _e(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def _when(value: datetime.datetime | None) -> str:
    return "" if value is None else _e(value.isoformat(timespec="milliseconds"))


def _status(status: str) -> str:
    return f'<span class="{_e(status)}">{_e(status)}</span>'


def _duration(run: Run) -> str:
    if run.started_at is None or run.ended_at is None:
        return ""
    ms = (run.ended_at - run.started_at) // datetime.timedelta(milliseconds=1)
    return f"{ms} ms"


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


class DevUI:
    """The pages and actions of one app; ``handle`` answers a request under ``/ui``."""

    def __init__(self, client: Inngest) -> None:
        self.client = client
        client.explain_events = EXPLAIN_EVENTS  # engines started from now on keep them
        engine = getattr(client.transport, "engine", None)
        if engine is not None and engine.running and engine.explain is None:
            engine.explain = Explain(limit=EXPLAIN_EVENTS)  # running already: from now on
        #: Put in every form and checked on every action (a page of another site cannot
        #: know it), so a browser that holds the credentials cannot be made to act.
        self.csrf = secrets.token_urlsafe(24)

    # ------------------------------------------------------------------ framing

    def _page(self, title: str, body: str) -> str:
        app = _e(self.client.app_id)
        return (
            "<!doctype html><html lang=en><head><meta charset=utf-8>"
            f"<title>{_e(title)} · {app} · eventbus</title>"
            f"<style>{_STYLE}</style></head><body><header><b>eventbus · {app}</b>"
            '<a href="/ui/events">Events</a><a href="/ui/runs">Runs</a>'
            '<a href="/ui/functions">Functions</a><a href="/ui/send">Send an event</a>'
            f"</header><main><h2>{_e(title)}</h2>{body}</main>"
            f"<script>{_LIVE}</script></body></html>"
        )

    def _action(self, path: str, label: str, extra: str = "") -> str:
        return (
            f'<form class=inline method=post action="{_e(path)}">'
            f'<input type=hidden name=csrf value="{_e(self.csrf)}">{extra}'
            f"<button>{_e(label)}</button></form>"
        )

    # ------------------------------------------------------------------ pages

    def events_page(self, engine: Engine, name: str | None) -> str:
        every = engine.events()  # one pass: the names to filter by, and the rows
        names = sorted({event.name for event in every})
        events = [e for e in reversed(every) if not name or e.name == name][:PAGE_ROWS]
        options = "".join(
            f'<option value="{_e(n)}"{" selected" if n == name else ""}>{_e(n)}</option>'
            for n in names
        )
        rows = []
        for event in events:
            runs = engine.runs(event_id=event.internal_id)
            started = ", ".join(
                f'<a href="/ui/runs/{_q(r.run_id)}">{_e(r.function.local_id)}</a> '
                f"{_status(r.status.value)}"
                for r in runs
            )
            rows.append(
                f'<tr><td><a href="/ui/events/{_q(event.internal_id)}">{_e(event.name)}</a>'
                f"{' <span class=note>(duplicate id)</span>' if event.deduplicated else ''}"
                f"</td><td>{_when(event.received_at)}</td><td><code>{_e(event.internal_id)}"
                f"</code></td><td>{started or '<span class=note>none</span>'}</td></tr>"
            )
        body = (
            '<form method=get action="/ui/events">Name <select name=name>'
            f'<option value="">all</option>{options}</select> <button>Filter</button></form>'
            "<table><tr><th>Event</th><th>Received</th><th>Id</th><th>Runs started</th></tr>"
            + "".join(rows)
            + "</table>"
        )
        return self._page("Events", body)

    def event_page(self, engine: Engine, event: StoredEvent) -> str:
        runs = engine.runs(event_id=event.internal_id)
        listed = "".join(
            f'<tr><td><a href="/ui/runs/{_q(r.run_id)}">{_e(r.run_id)}</a></td>'
            f"<td>{_e(r.function.id)}</td><td>{_status(r.status.value)}</td></tr>"
            for r in runs
        )
        matching = [
            function
            for function in self.client.functions()
            if any(trigger.event == event.name for trigger in function.triggers)
        ]
        started = {run.function.id for run in runs}
        recorded = (
            None if engine.explain is None else engine.explain.decisions.get(event.internal_id)
        )
        if recorded:
            why = "".join(
                f"<li>{_e(function_id)}: {_e(decision)} ({_e(detail)})</li>"
                for function_id, decision, detail in recorded
                if decision not in ("started run", "no trigger matched")
            )
        else:  # not recorded (the engine ran before the UI, or it is past EXPLAIN_EVENTS)
            why = "".join(
                f"<li>{_e(f.id)}: {_e(self._why_not(f, event))}</li>"
                for f in matching
                if f.id not in started
            )
        body = (
            f"<p><b>{_e(event.name)}</b> · id <code>{_e(event.id)}</code> · internal id "
            f"<code>{_e(event.internal_id)}</code> · received {_when(event.received_at)}</p>"
            f"<h3>Data</h3><pre>{_json(event.data)}</pre>"
            + (f"<h3>User</h3><pre>{_json(event.user)}</pre>" if event.user else "")
            + "<h3>Runs it started</h3>"
            + (
                f"<table><tr><th>Run</th><th>Function</th><th>Status</th></tr>{listed}</table>"
                if listed
                else "<p class=note>none</p>"
            )
            + (f"<h3>Functions it did not start</h3><ul>{why}</ul>" if why else "")
        )
        return self._page(f"Event {event.name}", body)

    @staticmethod
    def _why_not(function: Function, event: StoredEvent) -> str:
        if event.deduplicated:
            return "deduplicated: an event with this id arrived within 24 hours"
        expressions = [
            t.expression for t in function.triggers if t.event == event.name and t.expression
        ]
        if expressions:
            return "its trigger expression was not true: " + " | ".join(expressions)
        held = [
            name
            for name, option in (
                ("batch_events", function.batch),
                ("debounce", function.debounce),
                ("rate_limit or idempotency", function.rate_limit),
                ("singleton", function.singleton),
            )
            if option is not None
        ]
        if held:
            return f"its flow control holds or skips events: {', '.join(held)}"
        return "not started: its run was pruned"  # pragma: no cover - pruned before the event

    def runs_page(self, engine: Engine, status: str | None, function_id: str | None) -> str:
        wanted = None
        if status:
            wanted = next((s for s in RunStatus if s.value == status), None)
        runs = engine.runs(function_id or None, None, wanted)[::-1][:PAGE_ROWS]
        statuses = "".join(
            f"<option{' selected' if s.value == status else ''}>{_e(s.value)}</option>"
            for s in RunStatus
        )
        functions = "".join(
            f'<option value="{_e(f.id)}"{" selected" if f.id == function_id else ""}>'
            f"{_e(f.id)}</option>"
            for f in self.client.functions()
        )
        rows = "".join(
            f'<tr><td><a href="/ui/runs/{_q(r.run_id)}">{_e(r.run_id)}</a></td>'
            f"<td>{_e(r.function.id)}</td><td>{_status(r.status.value)}</td>"
            f'<td><a href="/ui/events/{_q(r.event.internal_id)}">{_e(r.event.name)}</a></td>'
            f"<td>{_when(r.started_at)}</td><td>{_duration(r)}</td></tr>"
            for r in runs
        )
        body = (
            '<form method=get action="/ui/runs">Status <select name=status>'
            f'<option value="">all</option>{statuses}</select> Function <select name=function>'
            f'<option value="">all</option>{functions}</select> <button>Filter</button></form>'
            "<table><tr><th>Run</th><th>Function</th><th>Status</th><th>Trigger</th>"
            f"<th>Started</th><th>Duration</th></tr>{rows}</table>"
        )
        return self._page("Runs", body)

    def run_page(self, engine: Engine, run: Run, error: str | None = None) -> str:
        actions = []
        if not run.status.is_finished:
            actions.append(self._action(f"/ui/runs/{_q(run.run_id)}/cancel", "Cancel"))
        else:
            actions.append(self._action(f"/ui/runs/{_q(run.run_id)}/rerun", "Rerun"))
        steps = "".join(self._step_row(record) for record in run.steps)
        emitted = [
            e
            for e in engine.events()
            if e.name.startswith("inngest/") and e.data.get("run_id") == run.run_id
        ]
        system = "".join(
            f'<li><a href="/ui/events/{_q(e.internal_id)}">{_e(e.name)}</a></li>' for e in emitted
        )
        outcome = ""
        if run.status is RunStatus.COMPLETED:
            outcome = f"<h3>Output</h3><pre>{_json(run.output)}</pre>"
        elif run.error is not None:
            outcome = f"<h3>Error</h3><pre>{_json(run.error)}</pre>"
        origin = (
            f' · rerun of <a href="/ui/runs/{_q(run.rerun_of)}">{_e(run.rerun_of)}</a>'
            if run.rerun_of
            else ""
        )
        body = (
            (f"<p class=error>{_e(error)}</p>" if error else "")
            + f"<p>{_status(run.status.value)} · {_e(run.function.id)} · attempts "
            f"{run.attempts} · started {_when(run.started_at) or '-'} · ended "
            f"{_when(run.ended_at) or '-'}{origin} · trigger "
            f'<a href="/ui/events/{_q(run.event.internal_id)}">{_e(run.event.name)}</a></p>'
            f"<p>{' '.join(actions)}</p>"
            "<h3>Steps</h3>"
            + (
                "<table><tr><th>Step</th><th>Kind</th><th>Status</th><th>Attempts</th>"
                "<th>Started</th><th>Ended</th><th>Input</th><th>Output or error</th></tr>"
                f"{steps}</table>"
                if steps
                else "<p class=note>no steps</p>"
            )
            + outcome
            + (f"<h3>System events it sent</h3><ul>{system}</ul>" if system else "")
        )
        return self._page(f"Run {run.run_id}", body)

    @staticmethod
    def _step_row(record: StepRecord) -> str:
        detail = ""
        if record.error is not None:
            detail = f"<pre>{_json(record.error)}</pre>"
        elif record.status.value == "Completed" and record.kind != "sleep":
            detail = f"<pre>{_json(record.output)}</pre>"
        if record.wake_ms is not None and record.status in (
            StepStatus.SLEEPING,
            StepStatus.WAITING,
        ):
            until = datetime.datetime.fromtimestamp(record.wake_ms / 1000, datetime.timezone.utc)
            what = "sleeps" if record.kind == "sleep" else "waits"
            detail += f"<span class=note>{what} until {_when(until)}</span>"
        if record.wait_for is not None:
            detail += f"<span class=note>for {_e(record.wait_for[0])}</span>"
        given = "" if record.input is None else f"<pre>{_json(record.input)}</pre>"
        return (
            f"<tr><td>{_e(record.id)}</td><td>{_e(record.kind)}</td>"
            f"<td>{_status(record.status.value)}</td><td>{record.attempts}</td>"
            f"<td>{_when(record.started_at)}</td><td>{_when(record.ended_at)}</td>"
            f"<td>{given}</td><td>{detail}</td></tr>"
        )

    def functions_page(self) -> str:
        rows = []
        for function in self.client.functions():
            triggers = [
                _e(t.event) + (f" if <code>{_e(t.expression)}</code>" if t.expression else "")
                for t in function.triggers
            ]
            triggers += [f"cron <code>{_e(c.cron)}</code>" for c in function.crons]
            flow = [
                f"{name}: <code>{_e(value)}</code>"
                for name, value in (
                    ("concurrency", function.concurrency),
                    ("throttle", function.throttle),
                    ("rate_limit or idempotency", function.rate_limit),
                    ("debounce", function.debounce),
                    ("singleton", function.singleton),
                    ("batch_events", function.batch),
                    ("priority", function.priority),
                    ("cancel", function.cancel),
                    ("timeouts", function.timeouts),
                )
                if value
            ]
            rows.append(
                f"<tr><td><b>{_e(function.id)}</b><br><span class=note>{_e(function.name)}"
                f"</span></td><td>{'<br>'.join(triggers)}</td><td>{function.retries}</td>"
                f"<td>{'<br>'.join(flow) or '<span class=note>none</span>'}</td><td>"
                + self._action(
                    "/ui/replay",
                    "Replay failed and cancelled runs",
                    f'<input type=hidden name=function value="{_e(function.id)}">'
                    "queued from <input type=datetime-local name=since step=1> "
                    "until <input type=datetime-local name=until step=1> (UTC; empty: "
                    "any time) ",
                )
                + "</td></tr>"
            )
        body = (
            "<table><tr><th>Function</th><th>Triggers</th><th>Retries</th>"
            f"<th>Flow control</th><th></th></tr>{''.join(rows)}</table>"
        )
        return self._page("Functions", body)

    def send_page(self, name: str = "", data: str = "{}", message: str = "") -> str:
        body = (
            (message and f"<p class=error>{_e(message)}</p>")
            + '<form method=post action="/ui/send">'
            f'<input type=hidden name=csrf value="{_e(self.csrf)}">'
            f'<p>Name <input name=name size=40 value="{_e(name)}" placeholder="app/user.signup">'
            "</p><p>Data (JSON)<br><textarea name=data rows=10>"
            f"{_e(data)}</textarea></p><p><button>Send</button></p></form>"
        )
        return self._page("Send an event", body)

    # ------------------------------------------------------------------ actions

    async def send_event(self, form: dict[str, str]) -> tuple[str | None, str]:
        """Validate and send the form's event; (the new event's id, None) or (None,
        the page with the error)."""
        name, data = form.get("name", "").strip(), form.get("data", "").strip() or "{}"
        try:
            decoded = json.loads(data)
        except ValueError as exc:
            return None, self.send_page(name, data, f"the data is not valid JSON: {exc}")
        try:
            batch = prepare_batch(
                {"name": name, "data": decoded},
                max_events=self.client.max_events_per_request,
                max_bytes=self.client.max_request_bytes,
            )
            (event_id,) = await self.client.transport.send(batch)
        except EventbusError as exc:
            return None, self.send_page(name, data, str(exc))
        return event_id, ""

    def replay(self, form: dict[str, str]) -> list[Run]:
        """The replay form: a function's failed and cancelled runs queued in the range."""
        bounds: dict[str, datetime.datetime | None] = {}
        for name in ("since", "until"):
            text = form.get(name, "").strip()
            try:
                value = datetime.datetime.fromisoformat(text) if text else None
            except ValueError:
                raise UsageError(f"{name} {text!r} is not a date and time") from None
            if value is not None and value.tzinfo is None:
                value = value.replace(tzinfo=datetime.timezone.utc)
            bounds[name] = value
        return self.client.replay(
            form.get("function", ""), since=bounds["since"], until=bounds["until"]
        )


def parse_form(body: bytes) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (the last value of each field)."""
    return {
        key: values[-1]
        for key, values in urllib.parse.parse_qs(
            body.decode("utf-8", "replace"), keep_blank_values=True
        ).items()
    }
