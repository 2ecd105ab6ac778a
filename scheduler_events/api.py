"""The collector's read API (aiohttp routes, JSON).

* ``GET /api/v1/placements`` — decisions, newest first.  Query filters:
  ``namespace``, ``outcome`` (pending, placed, failed, deleted), ``reason``
  (primary reason code), ``node``, ``limit`` (default 100, max 1000).
  Answer: ``{"items": [decision...], "count": n, "total": matching, "truncated": bool}``;
  a pod appears once, in its current state.
* ``GET /api/v1/fragmentation`` — the fragmentation report (see
  ``accelscope fragmentation report --format json``).
* ``GET /api/v1/placements/{namespace}/{pod}`` — one pod: ``{"decision":
  {...}, "explanation": "...", "facts": {...}, "history": [...]}``; 404 with
  ``{"error": ...}`` when the collector has never seen it.

Decisions come from the engine (tracked and recently finished pods), then
from the SQLite history for pods the engine no longer remembers.  Shapes:
``PlacementDecision.to_dict()`` (docs/collector.md).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from scheduler_events.explain import explain
from scheduler_events.model import OUTCOMES
from scheduler_events.pipeline import Pipeline


def routes(pipeline: Pipeline, *, history: Any | None = None,
           now: Callable[[], float] = time.time, fragmentation: Any | None = None) -> list[web.RouteDef]:
    """Route definitions for :func:`accelscope.web.build_app`."""

    async def list_placements(request: web.Request) -> web.Response:
        q = request.query
        outcome = q.get("outcome")
        if outcome and outcome not in OUTCOMES:
            return web.json_response({"error": f"outcome must be one of {', '.join(OUTCOMES)}"}, status=400)
        try:
            limit = int(q.get("limit", "100"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 1000:
            return web.json_response({"error": "limit must be an integer from 1 to 1000"}, status=400)
        with pipeline.lock:
            items = [d for d in pipeline.engine.decisions()
                     if (not q.get("namespace") or d.namespace == q["namespace"])
                     and (not outcome or d.outcome == outcome)
                     and (not q.get("reason") or d.primary_reason == q["reason"])
                     and (not q.get("node") or d.node == q["node"])]
            items.sort(key=lambda d: d.updated, reverse=True)
            total = len(items)
            out = [d.to_dict() for d in items[:limit]]
            known = {d.uid for d in pipeline.engine.decisions()}  # their current state wins over history
        if len(out) < limit and history is not None:
            seen = set(known)
            try:
                older = await asyncio.to_thread(history.query, namespace=q.get("namespace"), outcome=outcome,
                                                reason=q.get("reason"), node=q.get("node"), limit=limit)
            except Exception as exc:  # noqa: BLE001 - HistoryError: answer from memory, say so
                return web.json_response({"items": out, "count": len(out), "warning": f"history unavailable: {exc}"},
                                         dumps=_dumps)
            for d in older:
                if d["uid"] not in seen:
                    total += 1
                    if len(out) < limit:
                        out.append(d)
                    seen.add(d["uid"])
        return web.json_response({"items": out, "count": len(out), "total": total, "truncated": total > len(out)},
                                 dumps=_dumps)

    async def one_placement(request: web.Request) -> web.Response:
        ns, name = request.match_info["namespace"], request.match_info["pod"]
        with pipeline.lock:
            d = pipeline.engine.decision(ns, name)
            if d is not None:
                x = explain(d, pipeline.engine, now())
                body = {"decision": d.to_dict(), "explanation": x.text, "facts": x.facts,
                        "history": pipeline.engine.history(ns, name)}
                return web.json_response(body, dumps=_dumps)
        if history is not None:
            try:
                rows = await asyncio.to_thread(history.get, ns, name)
            except Exception as exc:  # noqa: BLE001 - HistoryError
                return web.json_response({"error": f"history unavailable: {exc}"}, status=503)
            if rows:
                return web.json_response({"decision": rows[0], "explanation": None, "facts": {},
                                          "history": rows[1:]}, dumps=_dumps)
        return web.json_response({"error": f"no placement known for {ns}/{name}"}, status=404)

    async def fragmentation_report(_: web.Request) -> web.Response:
        if fragmentation is None:
            return web.json_response({"error": "fragmentation view disabled"}, status=404)
        from scheduler_events.main import fragmentation_body

        with pipeline.lock:
            body = fragmentation_body(fragmentation)
        return web.json_response(body, dumps=_dumps)

    return [web.get("/api/v1/placements", list_placements),
            web.get("/api/v1/placements/{namespace}/{pod}", one_placement),
            web.get("/api/v1/fragmentation", fragmentation_report)]


def _dumps(obj: Any) -> str:
    import json

    return json.dumps(obj, default=str)
