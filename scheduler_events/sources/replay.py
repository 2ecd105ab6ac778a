"""Offline input: a recorded stream or a ``kubectl get -o json`` dump.

Two formats, told apart by content (see docs/formats.md, recorded streams):

* **JSON lines** of watch events, one object per line:
  ``{"kind": "Pod", "type": "ADDED", "received": 1767225600.5, "object": {...}}``
  (``kind`` as in :data:`scheduler_events.stream.KINDS`; ``received`` Unix
  seconds, optional).  The live collector writes this shape with
  ``--record FILE``; ``accelscope simulate`` emits it too.
* **A dump**: the output of ``kubectl get pods,nodes,events -A -o json`` (a
  ``List`` whose ``items`` are Pods, Nodes and Events of either API), or any
  JSON list of such objects.  It becomes SYNC events in causal order: nodes,
  then pods, then events by time.  The dump carries no watch times, so each
  object's ``received`` is the latest timestamp found in the dump ("now" when
  it was taken).

A line or item that can't be used is skipped and counted in ``errors`` by
kind (``bad_json``, ``bad_record``, ``unknown_kind``); the rest is replayed.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from scheduler_events.decisions import parse_time
from scheduler_events.stream import KINDS, TYPES, ObjectEvent

_KIND_ORDER = {"Node": 0, "PodGroup": 1, "ResourceSlice": 1, "ResourceClaim": 1, "Pod": 2, "Event": 3, "EventV1": 3}


def object_kind(obj: dict[str, Any]) -> str | None:
    """Our kind name for an API object dict (``EventV1`` for events.k8s.io)."""
    kind = obj.get("kind")
    if kind == "Event":
        return "EventV1" if str(obj.get("apiVersion", "")).startswith("events.k8s.io") else "Event"
    return kind if kind in KINDS else None


def _latest_time(obj: Any, best: float = 0.0) -> float:
    """Largest RFC 3339 timestamp anywhere in a JSON value (iterative)."""
    stack = [obj]
    while stack:
        cur = stack.pop()
        if isinstance(cur, dict):
            stack.extend(cur.values())
        elif isinstance(cur, list):
            stack.extend(cur)
        elif isinstance(cur, str) and len(cur) >= 20 and cur[4:5] == "-" and cur[10:11] == "T":
            t = parse_time(cur)
            if t is not None and t > best:
                best = t
    return best


def _event_time(obj: dict[str, Any]) -> float:
    series = obj.get("series") or {}
    for v in (series.get("lastObservedTime"), obj.get("lastTimestamp"), obj.get("eventTime"),
              obj.get("deprecatedLastTimestamp"), obj.get("firstTimestamp"),
              (obj.get("metadata") or {}).get("creationTimestamp")):
        t = parse_time(v)
        if t is not None:
            return t
    return 0.0


class ReplayStream:
    """Iterate the :class:`ObjectEvent` values of a recorded file.

    ``path``: a ``.jsonl`` stream or a JSON dump (detected from content).
    After iteration, ``errors`` counts skipped lines/items by kind and
    ``format`` says which format was read.  Raises OSError when the file
    can't be read, ValueError when it is neither format.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.errors: collections.Counter[str] = collections.Counter()
        self.format: str | None = None

    def __iter__(self) -> Iterator[ObjectEvent]:
        with self.path.open("rb") as f:
            head = f.read(4096).lstrip()
        if not head:
            self.format = "empty"
            return iter(())
        first_line = head.split(b"\n", 1)[0].strip()
        if head[:1] == b"[" or (head[:1] == b"{" and not self._is_record_line(first_line)):
            self.format = "dump"
            return self._dump()
        if head[:1] == b"{":
            self.format = "jsonl"
            return self._jsonl()
        raise ValueError(f"{self.path}: neither a JSON-lines stream nor a kubectl JSON dump")

    @staticmethod
    def _is_record_line(line: bytes) -> bool:
        try:
            rec = json.loads(line)
        except ValueError:
            return False
        return isinstance(rec, dict) and "object" in rec and "type" in rec

    def _jsonl(self) -> Iterator[ObjectEvent]:
        with self.path.open("r", encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                except ValueError:
                    self.errors["bad_json"] += 1
                    continue
                if not isinstance(rec, dict) or not isinstance(rec.get("object"), dict):
                    self.errors["bad_record"] += 1
                    continue
                obj = rec["object"]
                kind = rec.get("kind") or object_kind(obj)
                typ = rec.get("type", "ADDED")
                if kind not in KINDS or typ not in TYPES:
                    self.errors["unknown_kind"] += 1
                    continue
                received = rec.get("received")
                yield ObjectEvent(kind, typ, obj, float(received) if isinstance(received, (int, float)) else 0.0)

    def _dump(self) -> Iterator[ObjectEvent]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8", errors="replace"))
        except ValueError:
            self.errors["bad_json"] += 1
            return
        items = data.get("items") if isinstance(data, dict) else data
        if isinstance(data, dict) and data.get("kind") not in (None, "List") and "items" not in data:
            items = [data]
        if not isinstance(items, list):
            self.errors["bad_record"] += 1
            return
        now = _latest_time(items)
        ordered: list[tuple[int, float, int, str, dict[str, Any]]] = []
        for i, obj in enumerate(items):
            if not isinstance(obj, dict) or not isinstance(obj.get("metadata"), dict):
                self.errors["bad_record"] += 1
                continue
            kind = object_kind(obj)
            if kind is None:
                self.errors["unknown_kind"] += 1
                continue
            t = _event_time(obj) if kind in ("Event", "EventV1") else 0.0
            ordered.append((_KIND_ORDER.get(kind, 9), t, i, kind, obj))
        ordered.sort(key=lambda x: (x[0], x[1], x[2]))
        for _, t, _, kind, obj in ordered:
            yield ObjectEvent(kind, "SYNC", obj, t or now)
