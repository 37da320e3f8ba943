"""``ttfb api``: the lab's JSON API, for scripts and other tools.

Read-only over the store, through the same ``ttfb.store.queries`` the
dashboard reads, plus one write: a triage, recorded as the ``AlertTriaged``
event ``ttfb alerts triage`` sends. Served by aiohttp; every store call runs
in a thread, so one slow query does not hold the others.

    GET  /api/v1/health
    GET  /api/v1/scenarios
    GET  /api/v1/scenarios/{scenario}/series?component=ttfb&hardware_id=&branch=
    GET  /api/v1/alerts?triage=untriaged|acknowledged|expected|invalid|fixed&scenario=
    GET  /api/v1/alerts/{alert_id}
    POST /api/v1/alerts/{alert_id}/triage   {"status": ..., "by": ..., "note": ...}
    GET  /api/v1/bisects
    GET  /api/v1/experiments
    GET  /api/v1/false-alarms

With ``TTFB_API_TOKEN`` set, a triage needs ``Authorization: Bearer TOKEN``;
listening beyond the loopback address needs that token (the API refuses to
start without it).
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import ipaddress
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ttfb import events as ev
from ttfb.process import exit_with_lab
from ttfb.settings import Settings
from ttfb.store import Store, open_store, queries

PREFIX = "/api/v1"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data, default=str), status=status,
                        content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def refusal(settings: Settings) -> str:
    """Why the API must not start; empty when it may."""
    if not _loopback(settings.api_host) and not settings.api_token.get_secret_value():
        return (f"refusing to listen on {settings.api_host}: beyond the loopback address "
                "anyone who can reach the port could triage alerts; set TTFB_API_TOKEN")
    return ""


class Api:
    """The handlers, over one store."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings, self.store = settings, store
        self.token = settings.api_token.get_secret_value()

    async def read(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(call, self.store, *args, **kwargs)

    async def health(self, _: web.Request) -> web.Response:
        return _json({"ok": True})

    async def scenarios(self, _: web.Request) -> web.Response:
        return _json({"scenarios": await self.read(queries.scenario_overview)})

    async def series(self, request: web.Request) -> web.Response:
        scenario, q = request.match_info["scenario"], request.query
        component = q.get("component", "ttfb")
        if component not in (*ev.COMPONENTS, "ttfb"):
            return _error(400, f"unknown component {component!r}; one of "
                               f"{[*ev.COMPONENTS, 'ttfb']}")
        where = (q.get("hardware_id", ""), q.get("branch", ""))
        runs = await self.read(queries.scenario_runs, scenario, *where)
        bands = await self.read(queries.baseline_bands, scenario, component, *where)
        points = [{"run_id": r["run_id"], "commit": r["commit"], "branch": r["branch"],
                   "hardware_id": r["hardware_id"], "occurred_at": r["occurred_at"],
                   "ms": r["ttfb_ms"] if component == "ttfb" else
                   r["components"].get(component)} for r in runs]
        return _json({"scenario": scenario, "component": component, "runs": points,
                      "bands": bands})

    async def alerts(self, request: web.Request) -> web.Response:
        triage = request.query.get("triage")
        if triage is not None and triage not in (*ev.TRIAGE_STATUSES, "untriaged"):
            return _error(400, f"unknown triage {triage!r}; one of "
                               f"{[*ev.TRIAGE_STATUSES, 'untriaged']}")
        return _json({"alerts": await self.read(queries.current_alerts, triage=triage,
                                                scenario=request.query.get("scenario"))})

    async def alert(self, request: web.Request) -> web.Response:
        row = await self.read(queries.alert, request.match_info["alert_id"])
        return _json(row) if row else _error(404, "no such alert")

    async def triage(self, request: web.Request) -> web.Response:
        from producers.alerts import TriageError, record_triage, triage_event

        if self.token and not hmac.compare_digest(request.headers.get("Authorization", ""),
                                                  f"Bearer {self.token}"):
            return _error(401, "a triage needs Authorization: Bearer <TTFB_API_TOKEN>")
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("status"), str):
            return _error(400, "the body must be JSON with a status, one of "
                               f"{list(ev.TRIAGE_STATUSES)}, and optionally by and note")
        try:
            event = await asyncio.to_thread(
                triage_event, self.store, request.match_info["alert_id"], body["status"],
                str(body.get("by", "")), str(body.get("note", "")))
        except TriageError as exc:
            return _error(404 if "no alert" in str(exc) else 400, str(exc))
        where = await asyncio.to_thread(record_triage, self.settings, event)
        return _json({"recorded_in": where, "event": event.model_dump(mode="json")}, 201)

    async def bisects(self, _: web.Request) -> web.Response:
        rows = await self.read(queries.bisects)
        for row in rows:
            row["steps"], row["explanation"] = (json.loads(row[k] or "[]")
                                                for k in ("steps", "explanation"))
        return _json({"bisects": rows})

    async def experiments(self, _: web.Request) -> web.Response:
        rows = await self.read(queries.experiments)
        for row in rows:
            row["components"] = json.loads(row["components"] or "[]")
        return _json({"experiments": rows})

    async def false_alarms(self, _: web.Request) -> web.Response:
        return _json(await self.read(queries.false_alarms))


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception as exc:  # a store that is down answers 503, in a sentence
        return _error(503, f"the store could not answer: {type(exc).__name__}: "
                           f"{str(exc)[:300]}")


def build(settings: Settings, store: Store | None = None) -> web.Application:
    """The API's application over the configured store."""
    api = Api(settings, store or open_store(settings))
    app = web.Application(middlewares=[_errors])
    app.add_routes([
        web.get(f"{PREFIX}/health", api.health), web.get(f"{PREFIX}/scenarios", api.scenarios),
        web.get(f"{PREFIX}/scenarios/{{scenario}}/series", api.series),
        web.get(f"{PREFIX}/alerts", api.alerts),
        web.get(f"{PREFIX}/alerts/{{alert_id}}", api.alert),
        web.post(f"{PREFIX}/alerts/{{alert_id}}/triage", api.triage),
        web.get(f"{PREFIX}/bisects", api.bisects),
        web.get(f"{PREFIX}/experiments", api.experiments),
        web.get(f"{PREFIX}/false-alarms", api.false_alarms)])
    return app


def api_command(args: argparse.Namespace, settings: Settings) -> int:
    from ttfb.labinfo import last_lab

    settings = last_lab(settings)  # after ``ttfb up --demo``: the demo's lab
    update = {k: v for k, v in (("api_host", args.host), ("api_port", args.port)) if v}
    return serve(settings.model_copy(update=update))


def serve(settings: Settings) -> int:
    """Serve until SIGINT or SIGTERM."""
    problem = refusal(settings)
    if problem:
        print(f"ttfb api: {problem}", file=sys.stderr)
        return 2
    print(f"ttfb api: http://{settings.api_host}:{settings.api_port}{PREFIX}/",
          file=sys.stderr, flush=True)
    try:
        web.run_app(build(settings), host=settings.api_host, port=settings.api_port,
                    print=None, handle_signals=True)
    except OSError as exc:
        print(f"ttfb api: cannot listen on {settings.api_host}:{settings.api_port}: "
              f"{exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # the process ``Lab`` spawns beside the dashboard
    exit_with_lab()
    sys.exit(serve(Settings()))
