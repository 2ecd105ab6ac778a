"""Kubernetes API input: list + watch through the official ``kubernetes`` client.

:class:`KubeSource` follows each kind of :data:`scheduler_events.stream.KINDS`
in its own daemon thread:

1. (optional kinds only) probe the API group's discovery document
   ``/apis/<group>/<version>``; a 404 or a missing resource means "not
   installed" and the kind is skipped quietly (``stats[kind]["skipped"] = 1``);
   so is a 403 when listing it (RBAC does not grant it: the chart's toggles);
2. list, paginated with ``limit`` → one ``ObjectEvent(kind, "SYNC", obj)``
   per object;
3. watch from the list's ``metadata.resourceVersion`` with
   ``allowWatchBookmarks=true`` → ``ADDED``/``MODIFIED``/``DELETED``;
4. remember the newest resourceVersion (objects and ``BOOKMARK`` events) and
   re-watch from it when the server ends the watch (``timeoutSeconds``) or
   the connection drops, so nothing is duplicated or lost;
5. on 410 Gone (an ``ERROR`` watch event with ``code: 410`` or an HTTP 410)
   list again: ``SYNC`` for every object, then a synthesized ``DELETED``
   tombstone for every object seen before that the new list lacks;
6. on any other error back off exponentially with jitter (equal jitter:
   ``min(cap, base * 2**(n-1)) * U(0.5, 1)``) and retry.

Objects are the API's plain JSON dicts (the watch event's raw object, the
list's items with ``kind``/``apiVersion`` filled in, as the real server omits
them on list items of built-in types); the client's model deserialisation is
bypassed (``_preload_content=False``), which is both cheaper and keeps fields
the client's models do not know.

Cost on a large cluster: Pods cannot be narrowed by a field selector to
"requests accelerators" (field selectors only match a few fixed fields), so
all pods are followed unless the caller passes ``pod_label_selector`` /
``pod_field_selector``; filter with :func:`pod_is_relevant` downstream.
Events are narrowed to those about Pods (``involvedObject.kind=Pod`` on
core/v1, ``regarding.kind=Pod`` on events.k8s.io/v1).  Note that both Event
APIs serve the same stored objects, so following both delivers each event
twice (in two shapes, same uid).

Per kind, ``stats[kind]`` counts: ``lists``, ``relists`` (lists after the
first), ``pages``, ``synced`` (SYNC events), ``events`` (watch
ADDED/MODIFIED/DELETED), ``bookmarks``, ``watches``, ``watch_restarts``
(watches resumed from a remembered resourceVersion), ``deleted_synthesized``,
``backoffs`` and ``errors_<reason>`` with reason one of ``expired`` (410),
``http_<status>``, ``watch_<reason>`` (a non-410 ``ERROR`` event),
``connection``, ``timeout``, ``decode``, ``callback`` or an exception class
name.
"""

from __future__ import annotations

import json
import logging
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

from scheduler_events.stream import KINDS, ObjectEvent

__all__ = [
    "KubeSource",
    "KindSpec",
    "KIND_SPECS",
    "OPTIONAL_KINDS",
    "DEFAULT_EVENT_FIELD_SELECTOR",
    "DEFAULT_EVENT_V1_FIELD_SELECTOR",
    "SYNTHETIC_DELETE_ANNOTATION",
    "pod_is_relevant",
]

log = logging.getLogger(__name__)

DEFAULT_EVENT_FIELD_SELECTOR = "involvedObject.kind=Pod"
DEFAULT_EVENT_V1_FIELD_SELECTOR = "regarding.kind=Pod"

#: set (value ``"relist"``) on the tombstone of a ``DELETED`` event that was
#: synthesized because the object was missing from a relist; the real
#: deletion time is unknown.
SYNTHETIC_DELETE_ANNOTATION = "accelscope.io/synthesized-delete"


@dataclass(frozen=True)
class KindSpec:
    """Where the API serves one followed kind.  ``versions`` are tried in
    order when probing an optional kind."""

    kind: str
    group: str  # "" for the core group
    versions: tuple[str, ...]
    plural: str
    namespaced: bool
    optional: bool  # probe discovery; skip when not installed
    api_kind: str  # the object's ``kind`` field


KIND_SPECS: dict[str, KindSpec] = {
    s.kind: s
    for s in (
        KindSpec("Pod", "", ("v1",), "pods", True, False, "Pod"),
        KindSpec("Node", "", ("v1",), "nodes", False, False, "Node"),
        KindSpec("Event", "", ("v1",), "events", True, False, "Event"),
        KindSpec("EventV1", "events.k8s.io", ("v1",), "events", True, True, "Event"),
        KindSpec("PodGroup", "scheduling.volcano.sh", ("v1beta1",), "podgroups", True, True, "PodGroup"),
        KindSpec("ResourceClaim", "resource.k8s.io", ("v1", "v1beta2", "v1beta1"), "resourceclaims", True, True,
                 "ResourceClaim"),
        KindSpec("ResourceSlice", "resource.k8s.io", ("v1", "v1beta2", "v1beta1"), "resourceslices", False, True,
                 "ResourceSlice"),
    )
}
assert set(KIND_SPECS) == set(KINDS)

OPTIONAL_KINDS = tuple(k for k, s in KIND_SPECS.items() if s.optional)


class _Stopped(Exception):
    pass


class _Expired(Exception):
    pass


class _WatchError(Exception):
    def __init__(self, code: Any, reason: str, message: str) -> None:
        super().__init__(f"watch ERROR {code} {reason}: {message}")
        self.code, self.reason = code, reason


@dataclass(eq=False)
class _KindState:
    spec: KindSpec
    version: str | None = None
    rv: str | None = None
    phase: str = "new"  # new, probing, listing, watching, backoff, skipped, stopped
    synced: bool = False
    listed: bool = False
    fresh: bool = False  # the next watch starts right after a list
    known: dict[str, dict[str, Any]] = field(default_factory=dict)
    resp: Any = None
    thread: threading.Thread | None = None


def _object_key(obj: dict[str, Any]) -> str:
    md = obj.get("metadata") or {}
    uid = md.get("uid")
    if uid:
        return str(uid)
    ns = md.get("namespace")
    return f"{ns}/{md.get('name')}" if ns else str(md.get("name"))


def _tombstone(obj: dict[str, Any]) -> dict[str, Any]:
    md = obj.get("metadata") or {}
    slim = {k: md[k] for k in ("name", "namespace", "uid", "resourceVersion") if k in md}
    return {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "metadata": slim}


class KubeSource:
    """List + watch of the followed kinds, one daemon thread per kind.

    ``api_client``: a configured :class:`kubernetes.client.ApiClient` (tests
    point its ``Configuration.host`` at a fake; see :meth:`from_environment`).
    ``kinds``: subset of :data:`~scheduler_events.stream.KINDS` to follow
    (``ValueError`` on an unknown name); the optional ones (EventV1,
    PodGroup, ResourceClaim, ResourceSlice) are probed and skipped when
    their API group is not installed.  ``namespace``: follow one namespace
    instead of the whole cluster (Nodes and ResourceSlices stay
    cluster-wide).  Selectors: ``pod_label_selector``,
    ``pod_field_selector``, ``node_label_selector``,
    ``event_field_selector`` (core/v1), ``event_v1_field_selector``
    (events.k8s.io/v1); ``None`` or ``""`` means none.  ``page_size``: list
    ``limit``.  ``watch_timeout``: the server-side ``timeoutSeconds`` of each
    watch (the read timeout is that plus 15 s).  ``backoff_base`` /
    ``backoff_cap``: seconds.  ``sleep``: replaces the back-off wait (default:
    an interruptible wait that :meth:`stop` cuts short).  ``rng``: jitter
    source.  ``clock``: ``ObjectEvent.received``.  ``emit_bookmarks``: also
    pass ``BOOKMARK`` events (object with only a resourceVersion) to the
    callback.
    """

    def __init__(
        self,
        api_client: k8s_client.ApiClient,
        *,
        kinds: Iterable[str] = KINDS,
        namespace: str | None = None,
        pod_label_selector: str | None = None,
        pod_field_selector: str | None = None,
        node_label_selector: str | None = None,
        event_field_selector: str | None = DEFAULT_EVENT_FIELD_SELECTOR,
        event_v1_field_selector: str | None = DEFAULT_EVENT_V1_FIELD_SELECTOR,
        page_size: int = 500,
        watch_timeout: int = 300,
        connect_timeout: float = 10.0,
        list_timeout: float = 120.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        sleep: Callable[[float], None] | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        emit_bookmarks: bool = False,
    ) -> None:
        kinds = tuple(dict.fromkeys(kinds))
        unknown = [k for k in kinds if k not in KIND_SPECS]
        if unknown:
            raise ValueError(f"unknown kinds {unknown}; expected a subset of {KINDS}")
        if page_size < 1 or watch_timeout < 1:
            raise ValueError("page_size and watch_timeout must be >= 1")
        self.api_client = api_client
        self.kinds = kinds
        self.namespace = namespace or None
        self.page_size = page_size
        self.watch_timeout = int(watch_timeout)
        self.connect_timeout = connect_timeout
        self.list_timeout = list_timeout
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.emit_bookmarks = emit_bookmarks
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._clock = clock
        self._selectors: dict[str, tuple[str | None, str | None]] = {
            "Pod": (pod_field_selector or None, pod_label_selector or None),
            "Node": (None, node_label_selector or None),
            "Event": (event_field_selector or None, None),
            "EventV1": (event_v1_field_selector or None, None),
        }
        self._core = k8s_client.CoreV1Api(api_client)
        self._events = k8s_client.EventsV1Api(api_client)
        self._custom = k8s_client.CustomObjectsApi(api_client)
        self._states = {k: _KindState(KIND_SPECS[k]) for k in kinds}
        #: counters by kind (see the module docstring); read it through
        #: :meth:`stats_snapshot` from other threads
        self.stats: dict[str, dict[str, int]] = {k: {} for k in kinds}
        self._stats_lock = threading.Lock()
        self._stopping = threading.Event()
        self._callback: Callable[[ObjectEvent], None] | None = None
        self._started = False

    # ------------------------------------------------------------------ setup

    @classmethod
    def from_environment(
        cls,
        *,
        host: str | None = None,
        kubeconfig: str | None = None,
        context: str | None = None,
        **kwargs: Any,
    ) -> "KubeSource":
        """Build a source from the environment: ``host`` (e.g. a ``kubectl
        proxy`` URL, no auth) if given; else the in-cluster service account
        unless ``kubeconfig`` is given; else the kubeconfig (``KUBECONFIG`` or
        ``~/.kube/config``, optional ``context``).  Other keyword arguments go
        to the constructor.  Raises ``kubernetes.config.ConfigException``
        when no configuration is found."""
        cfg = k8s_client.Configuration()
        if host:
            cfg.host = host
        else:
            loaded = False
            if kubeconfig is None:
                try:
                    k8s_config.load_incluster_config(client_configuration=cfg)
                    loaded = True
                except k8s_config.ConfigException:
                    pass
            if not loaded:
                k8s_config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=cfg)
        return cls(k8s_client.ApiClient(cfg), **kwargs)

    # ------------------------------------------------------------------ control

    def start(self, callback: Callable[[ObjectEvent], None]) -> None:
        """Start one daemon thread per kind.  ``callback(ObjectEvent)`` is
        called from those threads, concurrently across kinds (the caller
        serialises); an exception it raises is logged and counted
        (``errors_callback``), never fatal.  Raises ``RuntimeError`` when
        called twice."""
        if self._started:
            raise RuntimeError("KubeSource already started")
        self._started = True
        self._callback = callback
        for kind, st in self._states.items():
            st.thread = threading.Thread(target=self._run, args=(st,), name=f"kube-source-{kind}", daemon=True)
            st.thread.start()

    def stop(self, timeout: float = 2.0) -> bool:
        """Stop all threads: cut the back-off waits, shut down open
        connections, join.  Returns True when every thread ended within
        ``timeout`` seconds (they are daemons either way)."""
        self._stopping.set()
        for st in self._states.values():
            self._abort(st.resp)
        deadline = time.monotonic() + timeout
        ok = True
        for st in self._states.values():
            if st.thread is not None:
                st.thread.join(max(0.0, deadline - time.monotonic()))
                ok = ok and not st.thread.is_alive()
        return ok

    # ------------------------------------------------------------------ status

    def resource_version(self, kind: str) -> str | None:
        """The resourceVersion a watch of ``kind`` would resume from."""
        return self._states[kind].rv

    def phase(self, kind: str) -> str:
        """``new``, ``probing``, ``listing``, ``watching``, ``backoff``,
        ``skipped`` or ``stopped``."""
        return self._states[kind].phase

    @property
    def skipped(self) -> tuple[str, ...]:
        """Optional kinds whose API is not installed."""
        return tuple(k for k, st in self._states.items() if st.phase == "skipped")

    def synced(self) -> bool:
        """True once every followed kind finished its first list (or was
        skipped): the readiness condition."""
        return all(st.synced or st.phase == "skipped" for st in self._states.values())

    def wait_synced(self, timeout: float) -> bool:
        """Poll :meth:`synced` for up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not self.synced():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def stats_snapshot(self) -> dict[str, dict[str, int]]:
        """A consistent copy of :attr:`stats`."""
        with self._stats_lock:
            return {k: dict(v) for k, v in self.stats.items()}

    # ------------------------------------------------------------------ internals

    def _count(self, st: _KindState, key: str, n: int = 1) -> None:
        with self._stats_lock:
            s = self.stats[st.spec.kind]
            s[key] = s.get(key, 0) + n

    def _emit(self, st: _KindState, type_: str, obj: dict[str, Any]) -> None:
        if self._callback is None:
            return
        try:
            self._callback(ObjectEvent(st.spec.kind, type_, obj, self._clock()))
        except Exception:  # noqa: BLE001 - a consumer bug must not stop the watch
            self._count(st, "errors_callback")
            log.exception("kube source: callback failed for %s %s", st.spec.kind, type_)

    def _backoff(self, failures: int) -> float:
        delay = min(self.backoff_cap, self.backoff_base * (2 ** min(max(0, failures - 1), 40)))
        return delay * (0.5 + 0.5 * self._rng.random())

    def _wait(self, st: _KindState, delay: float) -> None:
        st.phase = "backoff"
        self._count(st, "backoffs")
        if self._sleep is not None:
            self._sleep(delay)
        else:
            self._stopping.wait(delay)
        if self._stopping.is_set():
            raise _Stopped

    @staticmethod
    def _abort(resp: Any) -> None:
        if resp is None:
            return
        try:
            resp.shutdown()
            return
        except Exception:  # noqa: BLE001
            pass
        try:
            sock = getattr(getattr(resp, "connection", None), "sock", None)
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
        except Exception:  # noqa: BLE001
            pass

    def _run(self, st: _KindState) -> None:
        kind = st.spec.kind
        failures = 0
        need_list = True
        try:
            while not self._stopping.is_set():
                try:
                    if st.version is None:
                        st.phase = "probing"
                        st.version = self._probe(st)
                        if st.version is None:
                            st.phase = "skipped"
                            self._count(st, "skipped")
                            log.info("kube source: %s API not installed; not following %s", st.spec.group, kind)
                            return
                    if need_list:
                        self._list(st)
                        need_list = False
                        failures = 0
                    self._watch(st)
                    failures = 0
                except _Stopped:
                    break
                except _Expired:
                    self._count(st, "errors_expired")
                    need_list = True
                    failures += 1
                    if failures > 1:  # a 410 right after a relist: do not spin
                        self._wait(st, self._backoff(failures - 1))
                except Exception as exc:  # noqa: BLE001 - every failure is counted and retried
                    if self._stopping.is_set():
                        break
                    if isinstance(exc, ApiException) and exc.status == 403 and st.spec.optional:
                        # RBAC does not grant this optional kind (e.g. the chart's volcano/dra toggles are
                        # off): not following it is the intended state, not an outage
                        st.phase = "skipped"
                        self._count(st, "skipped")
                        self._count(st, "errors_forbidden")
                        log.info("kube source: %s: forbidden by RBAC; not following it", kind)
                        return
                    if isinstance(exc, ApiException) and exc.status == 410:
                        self._count(st, "errors_expired")
                        need_list = True
                        failures += 1
                        if failures > 1:
                            self._wait(st, self._backoff(failures - 1))
                        continue
                    failures += 1
                    reason = self._reason(exc)
                    self._count(st, f"errors_{reason}")
                    delay = self._backoff(failures)
                    level = logging.WARNING if failures == 1 else logging.DEBUG
                    log.log(level, "kube source: %s: %s (%s); retry in %.1fs", kind, reason, exc, delay)
                    self._wait(st, delay)
        except _Stopped:
            pass
        finally:
            if st.phase != "skipped":
                st.phase = "stopped"
            st.resp = None

    @staticmethod
    def _reason(exc: BaseException) -> str:
        if isinstance(exc, ApiException):
            return f"http_{exc.status}"
        if isinstance(exc, _WatchError):
            return f"watch_{exc.reason or exc.code}"
        if isinstance(exc, (urllib3.exceptions.TimeoutError, socket.timeout, TimeoutError)):
            return "timeout"
        if isinstance(exc, (urllib3.exceptions.HTTPError, ConnectionError, OSError)):
            return "connection"
        if isinstance(exc, (ValueError, json.JSONDecodeError)):
            return "decode"
        return type(exc).__name__

    def _probe(self, st: _KindState) -> str | None:
        """The first served version of an optional kind, or None."""
        spec = st.spec
        if not spec.optional:
            return spec.versions[0]
        for version in spec.versions:
            try:
                resp = self._custom.get_api_resources(
                    spec.group, version, _preload_content=False,
                    _request_timeout=(self.connect_timeout, self.list_timeout),
                )
            except ApiException as exc:
                if exc.status == 404:
                    continue
                raise
            body = self._read_json(st, resp)
            names = {r.get("name") for r in body.get("resources") or [] if isinstance(r, dict)}
            if spec.plural in names:
                return version
        return None

    def _request(self, st: _KindState, **params: Any) -> Any:
        spec, ns = st.spec, self.namespace
        field_sel, label_sel = self._selectors.get(spec.kind, (None, None))
        kwargs = {k: v for k, v in params.items() if v is not None}
        if field_sel:
            kwargs["field_selector"] = field_sel
        if label_sel:
            kwargs["label_selector"] = label_sel
        kwargs["_preload_content"] = False
        namespaced = spec.namespaced and ns is not None
        if spec.kind == "Pod":
            return (self._core.list_namespaced_pod(ns, **kwargs) if namespaced
                    else self._core.list_pod_for_all_namespaces(**kwargs))
        if spec.kind == "Node":
            return self._core.list_node(**kwargs)
        if spec.kind == "Event":
            return (self._core.list_namespaced_event(ns, **kwargs) if namespaced
                    else self._core.list_event_for_all_namespaces(**kwargs))
        if spec.kind == "EventV1" and st.version == "v1":
            return (self._events.list_namespaced_event(ns, **kwargs) if namespaced
                    else self._events.list_event_for_all_namespaces(**kwargs))
        assert st.version is not None
        if namespaced:
            return self._custom.list_namespaced_custom_object(spec.group, st.version, ns, spec.plural, **kwargs)
        return self._custom.list_cluster_custom_object(spec.group, st.version, spec.plural, **kwargs)

    def _read_json(self, st: _KindState, resp: Any) -> dict[str, Any]:
        st.resp = resp
        try:
            data = resp.data
        finally:
            st.resp = None
            resp.release_conn()
        if self._stopping.is_set():
            raise _Stopped
        body = json.loads(data)
        if not isinstance(body, dict):
            raise ValueError("response is not a JSON object")
        return body

    def _list(self, st: _KindState) -> None:
        spec = st.spec
        st.phase = "listing"
        if st.listed:
            self._count(st, "relists")
        self._count(st, "lists")
        seen: set[str] = set()
        cont: str | None = None
        list_rv: str | None = None
        while True:
            resp = self._request(
                st, limit=self.page_size, _continue=cont,
                _request_timeout=(self.connect_timeout, self.list_timeout),
            )
            body = self._read_json(st, resp)
            self._count(st, "pages")
            md = body.get("metadata") or {}
            if list_rv is None:
                list_rv = md.get("resourceVersion")
            api_version = body.get("apiVersion") or (f"{spec.group}/{st.version}" if spec.group else st.version)
            list_kind = body.get("kind") or ""
            item_kind = list_kind[:-4] if list_kind.endswith("List") else spec.api_kind
            for obj in body.get("items") or []:
                if not isinstance(obj, dict):
                    self._count(st, "errors_decode")
                    continue
                obj.setdefault("apiVersion", api_version)
                obj.setdefault("kind", item_kind)
                key = _object_key(obj)
                seen.add(key)
                st.known[key] = _tombstone(obj)
                self._count(st, "synced")
                self._emit(st, "SYNC", obj)
                if self._stopping.is_set():
                    raise _Stopped
            cont = md.get("continue") or None
            if not cont:
                break
        for key in [k for k in st.known if k not in seen]:
            tomb = st.known.pop(key)
            tomb["metadata"].setdefault("annotations", {})[SYNTHETIC_DELETE_ANNOTATION] = "relist"
            self._count(st, "deleted_synthesized")
            self._emit(st, "DELETED", tomb)
        st.rv = list_rv
        st.listed = True
        st.synced = True
        st.fresh = True

    def _watch(self, st: _KindState) -> None:
        """One watch request; returns when the server ends it cleanly."""
        if st.fresh:
            st.fresh = False
        else:
            self._count(st, "watch_restarts")
        self._count(st, "watches")
        resp = self._request(
            st,
            watch=True,
            resource_version=st.rv,
            allow_watch_bookmarks=True,
            timeout_seconds=self.watch_timeout,
            _request_timeout=(self.connect_timeout, self.watch_timeout + 15),
        )
        st.resp = resp
        st.phase = "watching"
        clean = False
        try:
            if self._stopping.is_set():
                raise _Stopped
            for line in iter_resp_lines(resp):
                if self._stopping.is_set():
                    raise _Stopped
                if not line.strip():
                    continue
                self._handle_line(st, line)
            clean = True
        except Exception:
            if self._stopping.is_set():
                raise _Stopped from None
            raise
        finally:
            st.resp = None
            if not clean:
                resp.close()
            resp.release_conn()

    def _handle_line(self, st: _KindState, line: str) -> None:
        try:
            event = json.loads(line)
            type_ = event["type"]
            obj = event["object"]
            if not isinstance(obj, dict):
                raise ValueError("object is not a JSON object")
        except (ValueError, KeyError, TypeError):
            self._count(st, "errors_decode")
            log.debug("kube source: %s: undecodable watch line %.200r", st.spec.kind, line)
            return
        if type_ == "ERROR":
            code = obj.get("code")
            if code == 410:
                raise _Expired(obj.get("message", ""))
            raise _WatchError(code, str(obj.get("reason") or ""), str(obj.get("message") or ""))
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if type_ == "BOOKMARK":
            if rv:
                st.rv = rv
            self._count(st, "bookmarks")
            if self.emit_bookmarks:
                self._emit(st, "BOOKMARK", obj)
            return
        if type_ not in ("ADDED", "MODIFIED", "DELETED"):
            self._count(st, "errors_unknown_type")
            return
        key = _object_key(obj)
        if type_ == "DELETED":
            st.known.pop(key, None)
        else:
            st.known[key] = _tombstone(obj)
        if rv:
            st.rv = rv
        self._count(st, "events")
        self._emit(st, type_, obj)


# pod_is_relevant lives with the request parsing (scheduler_events.requests); re-exported here.
from scheduler_events.requests import pod_is_relevant  # noqa: E402,F401
