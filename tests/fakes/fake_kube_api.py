"""A protocol-faithful fake Kubernetes API server for tests (aiohttp, loopback).

It serves list and watch for the resources the scheduler-event collector
follows, so the real ``kubernetes`` client can be exercised end to end::

    with FakeKubeAPI(volcano=False) as api:          # runs in its own thread
        api.create("pods", make_pod("p1"))
        cfg = kubernetes.client.Configuration(host=api.url)
        ...
        api.drop_watches()                           # break open streams
        api.compact()                                # older RVs now expire

Resources (``resource`` keys of the injection API):

=================================  ==========================================
key                                path (cluster-wide; namespaced variants too)
=================================  ==========================================
``pods``                           ``/api/v1/pods``
``nodes``                          ``/api/v1/nodes`` (cluster-scoped)
``events``                         ``/api/v1/events``
``events.k8s.io/events``           ``/apis/events.k8s.io/v1/events``
``scheduling.volcano.sh/podgroups``  ``/apis/scheduling.volcano.sh/v1beta1/podgroups`` (``volcano=True``)
``resource.k8s.io/resourceclaims``   ``/apis/resource.k8s.io/v1/resourceclaims`` (``dra=True``)
``resource.k8s.io/resourceslices``   ``/apis/resource.k8s.io/v1/resourceslices`` (``dra=True``, cluster-scoped)
=================================  ==========================================

Modelled after the real API server:

* one global resourceVersion counter (etcd revision) bumped by every change;
  a list's ``metadata.resourceVersion`` is that counter, not the newest item;
* list: ``kind: PodList`` etc.; items of built-in types carry no
  ``kind``/``apiVersion`` (custom resources do); ``limit``/``continue``
  chunking over a consistent snapshot ordered by namespace/name, a
  base64 continue token that expires (410) after :meth:`FakeKubeAPI.compact`,
  ``remainingItemCount`` when no selector is set; ``resourceVersion`` with
  ``resourceVersionMatch=Exact`` (410 when compacted) or NotOlderThan (504
  ``Too large resource version`` when in the future);
* ``fieldSelector`` (``a=b``, ``a==b``, ``a!=b``; only the fields the real
  server supports per resource, otherwise 400 ``field label not
  supported``) and ``labelSelector`` (``=``, ``==``, ``!=``, ``in``,
  ``notin``, exists, ``!`` not-exists; ``!=``/``notin`` match absent labels);
* watch: a chunked ``application/json`` stream of newline-delimited
  ``{"type", "object"}``; without a resourceVersion (or with ``"0"``)
  synthetic ``ADDED`` events for the current state come first; from a
  compacted resourceVersion the stream is one ``ERROR`` event with a
  ``Status`` ``code: 410, reason: Expired`` and ends; an object that moves in
  or out of the selectors arrives as ``ADDED``/``DELETED``;
  ``allowWatchBookmarks`` bookmarks on demand (:meth:`FakeKubeAPI.bookmark`)
  or periodically (``bookmark_interval``); the stream ends cleanly after
  ``timeoutSeconds``;
* discovery: ``/api``, ``/api/v1``, ``/apis``, ``/apis/<group>``,
  ``/apis/<group>/<version>``; a group that is not installed is 404;
* errors are ``Status`` objects with the usual reasons.

Simplified: no authentication, no writes over HTTP (tests mutate state
through the Python API), no ``sendInitialEvents``/streaming lists, no
``resourceVersion=0`` cache semantics (served like a quorum read), no
protobuf, no gzip, no graceful deletion (a delete is one ``DELETED``), and
history is kept in memory forever (compaction only moves the expiry mark).

Every request is recorded in :attr:`FakeKubeAPI.requests` (method, path,
query, response status) for assertions.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import re
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterator

from aiohttp import web

__all__ = [
    "FakeKubeAPI",
    "RecordedRequest",
    "Resource",
    "RESOURCES",
    "run_fake_kube_api",
    "make_pod",
    "make_node",
    "make_event",
    "make_event_v1",
    "make_podgroup",
]

_META_FIELDS = frozenset({"metadata.name", "metadata.namespace"})


@dataclass(frozen=True)
class Resource:
    """One served resource type."""

    key: str
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    builtin: bool = True  #: list items omit kind/apiVersion (the real API does for built-in types)
    fields: frozenset[str] = _META_FIELDS  #: supported field-selector fields

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()


_POD_FIELDS = _META_FIELDS | {
    "spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
    "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName",
}
_EVENT_FIELDS = _META_FIELDS | {
    "involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
    "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
    "reason", "reportingComponent", "source", "type",
}
_EVENT_V1_FIELDS = _META_FIELDS | {
    "regarding.kind", "regarding.namespace", "regarding.name", "regarding.uid",
    "regarding.apiVersion", "regarding.resourceVersion", "regarding.fieldPath",
    "reason", "reportingController", "type",
}

RESOURCES: dict[str, Resource] = {
    r.key: r
    for r in (
        Resource("pods", "", "v1", "pods", "Pod", True, fields=_POD_FIELDS),
        Resource("nodes", "", "v1", "nodes", "Node", False, fields=_META_FIELDS | {"spec.unschedulable"}),
        Resource("events", "", "v1", "events", "Event", True, fields=_EVENT_FIELDS),
        Resource("events.k8s.io/events", "events.k8s.io", "v1", "events", "Event", True, fields=_EVENT_V1_FIELDS),
        Resource("scheduling.volcano.sh/podgroups", "scheduling.volcano.sh", "v1beta1", "podgroups",
                 "PodGroup", True, builtin=False),
        Resource("resource.k8s.io/resourceclaims", "resource.k8s.io", "v1", "resourceclaims",
                 "ResourceClaim", True),
        Resource("resource.k8s.io/resourceslices", "resource.k8s.io", "v1", "resourceslices",
                 "ResourceSlice", False, fields=_META_FIELDS | {"spec.nodeName", "spec.driver"}),
    )
}

_REASONS = {
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
    409: "AlreadyExists", 410: "Expired", 422: "Invalid", 429: "TooManyRequests", 500: "InternalError",
    503: "ServiceUnavailable", 504: "Timeout",
}


def _status(code: int, message: str, reason: str | None = None) -> dict[str, Any]:
    return {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason or _REASONS.get(code, ""), "code": code,
    }


def _now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class _HTTPError(Exception):
    def __init__(self, code: int, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.reason = code, message, reason


@dataclass
class RecordedRequest:
    """One request the fake saw.  ``status`` is filled when it is answered
    (for a watch: 200 once the stream starts)."""

    method: str
    path: str
    query: dict[str, str]
    time: float
    status: int | None = None

    @property
    def watch(self) -> bool:
        return self.query.get("watch") in ("1", "true", "True")


@dataclass
class _Change:
    rv: int
    resource: str
    type: str
    obj: dict[str, Any]
    old: dict[str, Any] | None


@dataclass
class _Failure:
    remaining: int
    status: int
    path: str | None
    watch: bool | None
    reason: str | None
    message: str


# --------------------------------------------------------------------------- selectors


def _field_value(obj: dict[str, Any], path: str) -> str:
    if path == "source":  # core/v1 Event: source.component
        path = "source.component"
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def _parse_field_selector(text: str, res: Resource) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    for term in (t.strip() for t in text.split(",")):
        if not term:
            continue
        for op in ("!=", "==", "="):
            if op in term:
                key, _, value = term.partition(op)
                break
        else:
            raise _HTTPError(400, f'invalid selector: \'{text}\'; can\'t understand \'{term}\'')
        key = key.strip()
        if key not in res.fields:
            raise _HTTPError(400, f"field label not supported: {key}")
        out.append((key, "!=" if op == "!=" else "=", value.strip()))
    return out


_LABEL_SET_RE = re.compile(r"^\s*([^\s!=(),]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_LABEL_KEY_RE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?$")


def _split_top_level(text: str) -> list[str]:
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def _parse_label_selector(text: str) -> list[tuple[str, str, frozenset[str]]]:
    reqs: list[tuple[str, str, frozenset[str]]] = []
    for term in _split_top_level(text):
        m = _LABEL_SET_RE.match(term)
        if m:
            values = frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
            reqs.append((m.group(1), m.group(2), values))
            continue
        if term.startswith("!"):
            key, op, values = term[1:].strip(), "!exists", frozenset()
        else:
            for sym, name in (("!=", "!="), ("==", "="), ("=", "=")):
                if sym in term:
                    key, _, value = term.partition(sym)
                    key, op, values = key.strip(), name, frozenset({value.strip()})
                    break
            else:
                key, op, values = term, "exists", frozenset()
        if not _LABEL_KEY_RE.match(key):
            raise _HTTPError(400, f"unable to parse requirement: invalid label key \"{key}\"")
        reqs.append((key, op, values))
    return reqs


def _labels_match(obj: dict[str, Any], reqs: list[tuple[str, str, frozenset[str]]]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for key, op, values in reqs:
        present = key in labels
        value = labels.get(key)
        if op == "exists" and not present:
            return False
        if op == "!exists" and present:
            return False
        if op in ("=", "in") and (not present or value not in values):
            return False
        if op in ("!=", "notin") and present and value in values:
            return False
    return True


@dataclass
class _Query:
    res: Resource
    namespace: str | None
    fields: list[tuple[str, str, str]]
    labels: list[tuple[str, str, frozenset[str]]]

    def matches(self, obj: dict[str, Any] | None) -> bool:
        if obj is None:
            return False
        if self.namespace is not None and (obj.get("metadata") or {}).get("namespace") != self.namespace:
            return False
        for key, op, value in self.fields:
            if (_field_value(obj, key) == value) != (op == "="):
                return False
        return _labels_match(obj, self.labels)


# --------------------------------------------------------------------------- watchers


@dataclass(eq=False)
class _Watcher:
    query: _Query
    bookmarks: bool
    queue: asyncio.Queue
    request: RecordedRequest


def _key(obj: dict[str, Any]) -> str:
    md = obj.get("metadata") or {}
    ns = md.get("namespace")
    return f"{ns}/{md.get('name')}" if ns else str(md.get("name"))


class FakeKubeAPI:
    """The fake API server.  All state lives on the server's event loop; the
    injection methods may be called from any thread (they hop onto the loop
    and wait), and before :meth:`start` (they run directly).

    ``volcano`` / ``dra``: serve the Volcano ``scheduling.volcano.sh/v1beta1``
    and DRA ``resource.k8s.io/v1`` groups (404 otherwise).
    ``bookmark_interval``: seconds between automatic bookmarks on watches
    that allow them (``None``: only :meth:`bookmark`).
    ``initial_resource_version``: the counter's start value.
    """

    def __init__(
        self,
        *,
        volcano: bool = False,
        dra: bool = False,
        bookmark_interval: float | None = None,
        initial_resource_version: int = 1000,
        default_watch_timeout: float = 1800.0,
    ) -> None:
        self.installed_groups: set[str] = {"", "events.k8s.io"}
        if volcano:
            self.installed_groups.add("scheduling.volcano.sh")
        if dra:
            self.installed_groups.add("resource.k8s.io")
        self.bookmark_interval = bookmark_interval
        self.default_watch_timeout = default_watch_timeout
        self.requests: list[RecordedRequest] = []
        self._rv = initial_resource_version
        self._compacted = 0
        self._objects: dict[str, dict[str, dict[str, Any]]] = {k: {} for k in RESOURCES}
        self._history: list[_Change] = []
        self._watchers: set[_Watcher] = set()
        self._failures: list[_Failure] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._start_error: BaseException | None = None

    # ------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (after :meth:`start`)."""
        if self._port is None:
            raise RuntimeError("FakeKubeAPI is not started")
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> "FakeKubeAPI":
        """Start the server on 127.0.0.1 with an ephemeral port in a daemon
        thread with its own event loop.  Returns self."""
        if self._thread is not None:
            raise RuntimeError("already started")
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._astart())
            except BaseException as exc:  # pragma: no cover - start failure
                self._start_error = exc
                ready.set()
                loop.close()
                return
            self._loop = loop
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-kube-api", daemon=True)
        self._thread.start()
        if not ready.wait(10) or self._start_error is not None:
            raise RuntimeError(f"fake kube API did not start: {self._start_error!r}")
        return self

    def stop(self) -> None:
        """End open watches, stop the server and its thread."""
        if self._loop is None or self._thread is None:
            return
        loop = self._loop
        try:
            asyncio.run_coroutine_threadsafe(self._astop(), loop).result(10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(10)
            self._loop = None
            self._thread = None

    def __enter__(self) -> "FakeKubeAPI":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _astart(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()

    async def _astop(self) -> None:
        for w in list(self._watchers):
            w.queue.put_nowait(("close",))
        await asyncio.sleep(0)
        if self._runner is not None:
            await self._runner.cleanup()

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        loop = self._loop
        if loop is None or threading.current_thread() is self._thread:
            return fn(*args, **kwargs)

        async def run() -> Any:
            return fn(*args, **kwargs)

        return asyncio.run_coroutine_threadsafe(run(), loop).result(10)

    # ------------------------------------------------------------ injection API

    @property
    def resource_version(self) -> int:
        """The current global resourceVersion."""
        return self._rv

    def _resource(self, resource: str) -> Resource:
        try:
            return RESOURCES[resource]
        except KeyError:
            raise KeyError(f"unknown resource {resource!r}; one of {sorted(RESOURCES)}") from None

    def _bump(self) -> int:
        self._rv += 1
        return self._rv

    def _record(self, change: _Change) -> None:
        self._history.append(change)
        for w in self._watchers:
            w.queue.put_nowait(("change", change))

    def create(self, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Create an object; assigns uid, creationTimestamp (unless given),
        kind/apiVersion and a new resourceVersion; a namespaced object
        without a namespace goes to ``default``; ``metadata.generateName`` is
        honoured.  Raises ``ValueError`` when the name exists.  Returns a copy
        of the stored object."""
        return self._call(self._create, resource, obj)

    def _create(self, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
        res = self._resource(resource)
        obj = copy.deepcopy(obj)
        md = obj.setdefault("metadata", {})
        if not md.get("name"):
            if not md.get("generateName"):
                raise ValueError("metadata.name or metadata.generateName is required")
            md["name"] = md["generateName"] + uuid.uuid4().hex[:5]
        if res.namespaced:
            md.setdefault("namespace", "default")
        else:
            md.pop("namespace", None)
        key = _key(obj)
        if key in self._objects[res.key]:
            raise ValueError(f'{res.plural} "{md["name"]}" already exists')
        md.setdefault("uid", str(uuid.uuid4()))
        md.setdefault("creationTimestamp", _now_rfc3339())
        obj["kind"], obj["apiVersion"] = res.kind, res.api_version
        md["resourceVersion"] = str(self._bump())
        self._objects[res.key][key] = obj
        self._record(_Change(self._rv, res.key, "ADDED", obj, None))
        return copy.deepcopy(obj)

    def update(self, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Replace an existing object (found by namespace/name); uid and
        creationTimestamp are kept, the resourceVersion bumped.  Raises
        ``KeyError`` when it does not exist.  Returns a copy."""
        return self._call(self._update, resource, obj)

    def _update(self, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
        res = self._resource(resource)
        obj = copy.deepcopy(obj)
        md = obj.setdefault("metadata", {})
        if res.namespaced:
            md.setdefault("namespace", "default")
        key = _key(obj)
        old = self._objects[res.key].get(key)
        if old is None:
            raise KeyError(f'{res.plural} "{key}" not found')
        md["uid"] = old["metadata"]["uid"]
        md["creationTimestamp"] = old["metadata"].get("creationTimestamp")
        obj["kind"], obj["apiVersion"] = res.kind, res.api_version
        md["resourceVersion"] = str(self._bump())
        self._objects[res.key][key] = obj
        self._record(_Change(self._rv, res.key, "MODIFIED", obj, old))
        return copy.deepcopy(obj)

    def modify(
        self, resource: str, name: str, fn: Callable[[dict[str, Any]], Any], namespace: str | None = None
    ) -> dict[str, Any]:
        """Read-modify-write: ``fn`` gets a copy of the object and mutates it
        (or returns a replacement).  ``namespace`` defaults to ``default`` for
        namespaced resources."""

        def run() -> dict[str, Any]:
            current = self._get(resource, name, namespace)
            if current is None:
                raise KeyError(f'{resource} "{name}" not found')
            result = fn(current)
            return self._update(resource, result if isinstance(result, dict) else current)

        return self._call(run)

    def delete(self, resource: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        """Delete an object: one ``DELETED`` event carrying the object with a
        new resourceVersion.  Raises ``KeyError`` when it does not exist."""
        return self._call(self._delete, resource, name, namespace)

    def _delete(self, resource: str, name: str, namespace: str | None) -> dict[str, Any]:
        res = self._resource(resource)
        key = f"{namespace or 'default'}/{name}" if res.namespaced else name
        old = self._objects[res.key].pop(key, None)
        if old is None:
            raise KeyError(f'{res.plural} "{key}" not found')
        obj = copy.deepcopy(old)
        obj["metadata"]["resourceVersion"] = str(self._bump())
        self._record(_Change(self._rv, res.key, "DELETED", obj, old))
        return copy.deepcopy(obj)

    def get(self, resource: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """A copy of the stored object, or ``None``."""
        return self._call(self._get, resource, name, namespace)

    def _get(self, resource: str, name: str, namespace: str | None) -> dict[str, Any] | None:
        res = self._resource(resource)
        key = f"{namespace or 'default'}/{name}" if res.namespaced else name
        obj = self._objects[res.key].get(key)
        return copy.deepcopy(obj) if obj is not None else None

    def objects(self, resource: str) -> list[dict[str, Any]]:
        """Copies of all current objects of a resource, in key order."""
        res = self._resource(resource)
        return self._call(lambda: [copy.deepcopy(o) for _, o in sorted(self._objects[res.key].items())])

    def compact(self, resource_version: int | None = None) -> int:
        """Make every resourceVersion older than ``resource_version`` (default:
        the current one) expire: watches from them get an ``ERROR`` 410,
        Exact lists and continue tokens from them get HTTP 410.  Open
        watches are not affected (see :meth:`expire_watches`).  Returns the
        compaction mark."""

        def run() -> int:
            self._compacted = self._rv if resource_version is None else resource_version
            return self._compacted

        return self._call(run)

    def bookmark(self, resource: str | None = None) -> int:
        """Send a ``BOOKMARK`` with the current resourceVersion on every open
        watch (of ``resource``) that allowed bookmarks.  Returns how many."""
        return self._call(self._broadcast_control, resource, ("bookmark",), True)

    def drop_watches(self, resource: str | None = None) -> int:
        """Abort every open watch connection (of ``resource``) mid-stream: the
        TCP connection closes without the final chunk.  Returns how many."""
        return self._call(self._broadcast_control, resource, ("drop",), False)

    def expire_watches(self, resource: str | None = None) -> int:
        """Send an ``ERROR`` 410 Expired event on every open watch (of
        ``resource``) and end those streams, as the server does for a watcher
        that fell too far behind.  Returns how many."""
        return self._call(self._broadcast_control, resource, ("expire",), False)

    def send_raw(self, event: dict[str, Any] | str, resource: str | None = None) -> int:
        """Write one line on every open watch (of ``resource``): a dict is
        JSON-encoded (e.g. ``{"type": "ERROR", "object": {...}}``), a string is
        sent as is (e.g. a malformed line).  The stream continues, except
        after an ``ERROR`` event, which ends it as the real server does.
        Returns how many."""
        return self._call(self._broadcast_control, resource, ("raw", event), False)

    def close_watches(self, resource: str | None = None) -> int:
        """End every open watch (of ``resource``) cleanly, as a timeout does."""
        return self._call(self._broadcast_control, resource, ("close",), False)

    def _broadcast_control(self, resource: str | None, item: tuple, only_bookmarks: bool) -> int:
        n = 0
        for w in list(self._watchers):
            if resource is not None and w.query.res.key != resource:
                continue
            if only_bookmarks and not w.bookmarks:
                continue
            w.queue.put_nowait(item + (self._rv,))
            n += 1
        return n

    def open_watches(self, resource: str | None = None) -> int:
        """How many watch streams are open (for ``resource``)."""
        return self._call(
            lambda: sum(1 for w in self._watchers if resource is None or w.query.res.key == resource)
        )

    def wait_for_watches(self, n: int = 1, resource: str | None = None, timeout: float = 5.0) -> bool:
        """Poll until at least ``n`` watches (of ``resource``) are open."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.open_watches(resource) >= n:
                return True
            time.sleep(0.01)
        return False

    def fail_next(
        self,
        n: int = 1,
        status: int = 500,
        *,
        path: str | None = None,
        watch: bool | None = None,
        reason: str | None = None,
        message: str = "injected failure",
    ) -> None:
        """Answer the next ``n`` requests (whose path equals ``path`` when
        given; only watches / only non-watches when ``watch`` is set) with
        HTTP ``status`` and a ``Status`` body."""
        self._call(self._failures.append, _Failure(n, status, path, watch, reason, message))

    def requests_to(self, path: str, *, watch: bool | None = None) -> list[RecordedRequest]:
        """Recorded requests for one path (optionally only (non-)watches)."""
        return [r for r in list(self.requests) if r.path == path and (watch is None or r.watch == watch)]

    def clear_requests(self) -> None:
        self._call(self.requests.clear)

    # ------------------------------------------------------------ HTTP

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        rec = RecordedRequest(request.method, request.path, dict(request.query), time.time())
        self.requests.append(rec)
        try:
            failure = self._take_failure(rec)
            if failure is not None:
                raise _HTTPError(failure.status, failure.message, failure.reason)
            if request.method != "GET":
                raise _HTTPError(405, "the server does not allow this method on the requested resource")
            return await self._route(request, rec)
        except _HTTPError as err:
            rec.status = err.code
            return web.json_response(_status(err.code, err.message, err.reason), status=err.code)

    def _take_failure(self, rec: RecordedRequest) -> _Failure | None:
        for f in self._failures:
            if f.remaining <= 0:
                continue
            if f.path is not None and f.path != rec.path:
                continue
            if f.watch is not None and f.watch != rec.watch:
                continue
            f.remaining -= 1
            return f
        return None

    def _json(self, rec: RecordedRequest, body: dict[str, Any]) -> web.Response:
        rec.status = 200
        return web.json_response(body)

    async def _route(self, request: web.Request, rec: RecordedRequest) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        not_found = _HTTPError(404, "the server could not find the requested resource")
        if parts == ["api"]:
            return self._json(rec, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})
        if parts == ["apis"]:
            return self._json(rec, self._group_list())
        if not parts or parts[0] not in ("api", "apis"):
            raise not_found
        if parts[0] == "api":
            if len(parts) < 2 or parts[1] != "v1":
                raise not_found
            group, version, rest = "", "v1", parts[2:]
        else:
            group = parts[1]
            if group not in self.installed_groups or group == "":
                raise not_found
            if len(parts) == 2:
                return self._json(rec, self._group(group))
            version, rest = parts[2], parts[3:]
        resources = [r for r in RESOURCES.values() if r.group == group and r.version == version]
        if not resources:
            raise not_found
        if not rest:
            return self._json(rec, self._resource_list(group, version, resources))
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        res = next((r for r in resources if r.plural == rest[0]), None)
        if res is None or len(rest) > 2 or (namespace is not None and not res.namespaced):
            raise not_found
        if len(rest) == 2:
            key = f"{namespace}/{rest[1]}" if res.namespaced else rest[1]
            obj = self._objects[res.key].get(key) if (namespace or not res.namespaced) else None
            if obj is None:
                raise _HTTPError(404, f'{res.plural} "{rest[1]}" not found')
            return self._json(rec, obj)
        q = request.query
        query = _Query(
            res,
            namespace,
            _parse_field_selector(q.get("fieldSelector", ""), res),
            _parse_label_selector(q.get("labelSelector", "")),
        )
        if rec.watch:
            return await self._watch(request, rec, query)
        return self._json(rec, self._list(q, query))

    def _group(self, group: str) -> dict[str, Any]:
        versions = sorted({r.version for r in RESOURCES.values() if r.group == group})
        gv = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": gv, "preferredVersion": gv[0]}

    def _group_list(self) -> dict[str, Any]:
        groups = sorted(g for g in self.installed_groups if g)
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [self._group(g) for g in groups]}

    def _resource_list(self, group: str, version: str, resources: list[Resource]) -> dict[str, Any]:
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": [
                {"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind,
                 "verbs": ["get", "list", "watch"]}
                for r in resources
            ],
        }

    # ------------------------------------------------------------ list

    def _state_at(self, res: Resource, rv: int) -> dict[str, dict[str, Any]]:
        if rv >= self._rv:
            return self._objects[res.key]
        state: dict[str, dict[str, Any]] = {}
        for ch in self._history:
            if ch.rv > rv:
                break
            if ch.resource != res.key:
                continue
            if ch.type == "DELETED":
                state.pop(_key(ch.obj), None)
            else:
                state[_key(ch.obj)] = ch.obj
        return state

    def _list(self, q: Any, query: _Query) -> dict[str, Any]:
        res = query.res
        limit_text = q.get("limit", "")
        try:
            limit = int(limit_text) if limit_text else 0
        except ValueError:
            raise _HTTPError(400, f"invalid limit: {limit_text!r}") from None
        rv_text = q.get("resourceVersion", "")
        match = q.get("resourceVersionMatch", "")
        cont = q.get("continue", "")
        start_key = ""
        if cont:
            if rv_text:
                raise _HTTPError(400, "specifying resource version is not allowed when using continue")
            try:
                token = json.loads(base64.urlsafe_b64decode(cont + "=" * (-len(cont) % 4)))
                snap, start_key = int(token["rv"]), str(token["start"])
            except (ValueError, KeyError, TypeError):
                raise _HTTPError(400, "continue key is not valid: incorrect encoded start resourceVersion") from None
            if snap < self._compacted:
                raise _HTTPError(
                    410,
                    "The provided continue parameter is too old to display a consistent list result. "
                    "You can start a new list without the continue parameter.",
                    "Expired",
                )
        elif rv_text and rv_text != "0":
            try:
                want = int(rv_text)
            except ValueError:
                raise _HTTPError(400, f"invalid resource version: {rv_text!r}") from None
            if want > self._rv:
                raise _HTTPError(504, f"Too large resource version: {want}, current: {self._rv}", "Timeout")
            if match == "Exact":
                if want < self._compacted:
                    raise _HTTPError(410, f"too old resource version: {want} ({self._compacted})", "Expired")
                snap = want
            else:
                snap = self._rv
        else:
            snap = self._rv
        items = sorted(
            ((k, o) for k, o in self._state_at(res, snap).items() if query.matches(o)),
            key=lambda kv: kv[0],
        )
        if start_key:
            items = [kv for kv in items if kv[0] > start_key]
        metadata: dict[str, Any] = {"resourceVersion": str(snap)}
        if limit > 0 and len(items) > limit:
            page, rest = items[:limit], len(items) - limit
            token = {"v": "meta.k8s.io/v1", "rv": snap, "start": page[-1][0]}
            metadata["continue"] = base64.urlsafe_b64encode(json.dumps(token).encode()).decode().rstrip("=")
            if not query.fields and not query.labels:
                metadata["remainingItemCount"] = rest
            items = page
        return {
            "kind": f"{res.kind}List",
            "apiVersion": res.api_version,
            "metadata": metadata,
            "items": [self._list_item(res, o) for _, o in items],
        }

    @staticmethod
    def _list_item(res: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        item = copy.deepcopy(obj)
        if res.builtin:
            item.pop("kind", None)
            item.pop("apiVersion", None)
        return item

    # ------------------------------------------------------------ watch

    def _translate(self, query: _Query, ch: _Change) -> dict[str, Any] | None:
        if ch.resource != query.res.key:
            return None
        new_in = query.matches(ch.obj)
        old_in = query.matches(ch.old) if ch.old is not None else False
        if ch.type == "DELETED":
            return {"type": "DELETED", "object": ch.obj} if old_in else None
        if ch.type == "ADDED":
            return {"type": "ADDED", "object": ch.obj} if new_in else None
        if new_in and old_in:
            return {"type": "MODIFIED", "object": ch.obj}
        if new_in:
            return {"type": "ADDED", "object": ch.obj}
        if old_in:
            return {"type": "DELETED", "object": ch.obj}
        return None

    async def _watch(self, request: web.Request, rec: RecordedRequest, query: _Query) -> web.StreamResponse:
        q = request.query
        rv_text = q.get("resourceVersion", "")
        try:
            start = int(rv_text) if rv_text and rv_text != "0" else None
            timeout = float(q.get("timeoutSeconds") or self.default_watch_timeout)
        except ValueError:
            raise _HTTPError(400, "invalid resourceVersion or timeoutSeconds") from None
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1", "True")
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        # Take the snapshot and subscribe in one step (no await in between).
        expired = start is not None and start < self._compacted
        if not expired:
            if start is None:
                for _, obj in sorted(self._objects[query.res.key].items()):
                    if query.matches(obj):
                        queue.put_nowait(("raw", {"type": "ADDED", "object": obj}))
            else:
                for ch in self._history:
                    if ch.rv > start:
                        queue.put_nowait(("change", ch))
        watcher = _Watcher(query, bookmarks, queue, rec)
        if not expired:
            self._watchers.add(watcher)
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        rec.status = 200
        try:
            await resp.prepare(request)
            if expired:
                msg = f"too old resource version: {start} ({self._compacted})"
                await self._write(resp, {"type": "ERROR", "object": _status(410, msg, "Expired")})
                await resp.write_eof()
                return resp
            deadline = loop.time() + timeout
            next_bookmark = loop.time() + self.bookmark_interval if self.bookmark_interval else None
            while True:
                now = loop.time()
                if now >= deadline:
                    break
                wait = deadline - now
                if next_bookmark is not None:
                    wait = min(wait, max(0.0, next_bookmark - now))
                try:
                    item = await asyncio.wait_for(queue.get(), wait)
                except asyncio.TimeoutError:
                    if next_bookmark is not None and loop.time() >= next_bookmark:
                        next_bookmark = loop.time() + (self.bookmark_interval or 0)
                        if bookmarks:
                            await self._write(resp, self._bookmark_event(query.res, self._rv))
                    continue
                tag = item[0]
                if tag == "raw":
                    await self._write(resp, item[1])
                    if isinstance(item[1], dict) and item[1].get("type") == "ERROR":
                        break
                elif tag == "change":
                    ev = self._translate(query, item[1])
                    if ev is not None:
                        await self._write(resp, ev)
                elif tag == "bookmark":
                    await self._write(resp, self._bookmark_event(query.res, item[1]))
                elif tag == "expire":
                    msg = f"too old resource version: {self._compacted} ({self._rv})"
                    await self._write(resp, {"type": "ERROR", "object": _status(410, msg, "Expired")})
                    break
                elif tag == "drop":
                    self._watchers.discard(watcher)
                    if request.transport is not None:
                        request.transport.abort()
                    return resp
                elif tag == "close":
                    break
            self._watchers.discard(watcher)
            await resp.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            self._watchers.discard(watcher)
            raise
        finally:
            self._watchers.discard(watcher)
        return resp

    @staticmethod
    def _bookmark_event(res: Resource, rv: int) -> dict[str, Any]:
        return {"type": "BOOKMARK", "object": {"kind": res.kind, "apiVersion": res.api_version,
                                               "metadata": {"resourceVersion": str(rv)}}}

    @staticmethod
    async def _write(resp: web.StreamResponse, event: dict[str, Any] | str) -> None:
        line = event if isinstance(event, str) else json.dumps(event, separators=(",", ":"))
        await resp.write(line.encode() + b"\n")


@contextmanager
def run_fake_kube_api(**kwargs: Any) -> Iterator[FakeKubeAPI]:
    """``with run_fake_kube_api(volcano=True) as api: ...`` — start, yield, stop."""
    api = FakeKubeAPI(**kwargs).start()
    try:
        yield api
    finally:
        api.stop()


# --------------------------------------------------------------------------- object builders


def make_pod(
    name: str,
    namespace: str = "default",
    *,
    requests: dict[str, str] | None = None,
    limits: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    node_name: str | None = None,
    scheduler_name: str = "default-scheduler",
    phase: str = "Pending",
    conditions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A minimal Pod as the API serialises it (one container ``main``)."""
    resources: dict[str, Any] = {}
    if requests:
        resources["requests"] = dict(requests)
    if limits:
        resources["limits"] = dict(limits)
    spec: dict[str, Any] = {
        "containers": [{"name": "main", "image": "busybox", "resources": resources}],
        "schedulerName": scheduler_name,
    }
    if node_name:
        spec["nodeName"] = node_name
    md: dict[str, Any] = {"name": name, "namespace": namespace}
    if annotations:
        md["annotations"] = dict(annotations)
    if labels:
        md["labels"] = dict(labels)
    status: dict[str, Any] = {"phase": phase}
    if conditions:
        status["conditions"] = list(conditions)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": spec, "status": status}


def make_node(
    name: str,
    *,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    capacity: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A minimal Node."""
    md: dict[str, Any] = {"name": name, "labels": dict(labels or {})}
    if annotations:
        md["annotations"] = dict(annotations)
    cap = dict(capacity or {"cpu": "8", "memory": "32Gi", "pods": "110"})
    return {"apiVersion": "v1", "kind": "Node", "metadata": md, "spec": {},
            "status": {"capacity": cap, "allocatable": dict(cap)}}


def make_event(
    name: str,
    namespace: str = "default",
    *,
    involved_kind: str = "Pod",
    involved_name: str = "",
    involved_uid: str = "",
    reason: str = "FailedScheduling",
    message: str = "",
    type: str = "Warning",
    component: str = "default-scheduler",
) -> dict[str, Any]:
    """A core/v1 Event about an object (default: a Pod)."""
    ts = _now_rfc3339()
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name, "namespace": namespace},
        "involvedObject": {"kind": involved_kind, "namespace": namespace, "name": involved_name,
                           "uid": involved_uid, "apiVersion": "v1"},
        "reason": reason, "message": message, "type": type,
        "source": {"component": component}, "reportingComponent": component,
        "firstTimestamp": ts, "lastTimestamp": ts, "count": 1,
    }


def make_event_v1(
    name: str,
    namespace: str = "default",
    *,
    regarding_kind: str = "Pod",
    regarding_name: str = "",
    regarding_uid: str = "",
    reason: str = "FailedScheduling",
    note: str = "",
    type: str = "Warning",
    controller: str = "default-scheduler",
    action: str = "Scheduling",
) -> dict[str, Any]:
    """An events.k8s.io/v1 Event about an object (default: a Pod)."""
    return {
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": name, "namespace": namespace},
        "regarding": {"kind": regarding_kind, "namespace": namespace, "name": regarding_name,
                      "uid": regarding_uid, "apiVersion": "v1"},
        "reason": reason, "note": note, "type": type, "action": action,
        "reportingController": controller, "reportingInstance": f"{controller}-1",
        "eventTime": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }


def make_podgroup(name: str, namespace: str = "default", *, min_member: int = 1, phase: str = "Pending") -> dict[str, Any]:
    """A Volcano PodGroup (scheduling.volcano.sh/v1beta1)."""
    return {
        "apiVersion": "scheduling.volcano.sh/v1beta1", "kind": "PodGroup",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"minMember": min_member},
        "status": {"phase": phase},
    }
