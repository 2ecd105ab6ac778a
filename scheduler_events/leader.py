"""Leader election for collector replicas through a ``coordination.k8s.io/v1`` Lease.

Two (or more) collector replicas follow the same API and serve the same
read API; only one of them, the holder of the Lease, writes the SQLite
history and pushes OTLP traces (issue 7, "Collector Deployment").

:class:`LeaderElector` runs the protocol client-go's ``leaderelection``
package runs, with the ``kubernetes`` client's :class:`CoordinationV1Api`:

* every ``retry_period`` seconds (candidates add up to ``jitter`` of it at
  random, so replicas do not move in lockstep) it reads the Lease;
* absent: it creates it (``holderIdentity`` = this replica,
  ``leaseTransitions`` 0); a 409 ``AlreadyExists`` means another replica
  was faster;
* held by another replica and not expired: it follows;
* expired, released (empty ``holderIdentity``) or its own: it replaces the
  Lease with itself as holder, sending the ``metadata.resourceVersion`` it
  read, so the API server's optimistic concurrency lets only one of two
  racing replicas win (the other gets 409 ``Conflict``; after a conflict the
  Lease is read again and the attempt repeated once at once);
  ``leaseTransitions`` grows by one when the holder changes, and
  ``acquireTime`` is set then; a renewal keeps both and moves ``renewTime``;
* the leader steps down when it sees another holder, or when it has not
  renewed for ``renew_deadline`` seconds (the API is unreachable, or keeps
  answering errors); ``renew_deadline < lease_duration``, so it stops
  writing before any other replica may consider the Lease expired;
* :meth:`LeaderElector.stop` steps down and releases the Lease (empty
  ``holderIdentity``, ``leaseDurationSeconds`` 1, as client-go does) so
  another replica takes over at its next attempt, not a lease duration later.

When is a Lease held by another replica expired?  The issue's rule,
``renewTime + leaseDurationSeconds < now``, compares two clocks: with the
holder's clock behind this one's by more than the lease duration, a live
holder would be robbed at every attempt.  So once this replica has *seen*
the record change (a renewal), it trusts its own clock only, as client-go
does: the Lease expires ``leaseDurationSeconds`` after the last change it
observed.  The ``renewTime`` rule is used only before any change was seen
(at start-up, where it lets a replica take over a stale Lease at once
instead of waiting a full duration); and a record unchanged for a full
duration by the local clock is expired whatever its ``renewTime`` says (a
holder whose clock runs ahead cannot block a takeover either).

``MicroTime`` fields (``acquireTime``, ``renewTime``) are written as RFC 3339
with exactly six fractional digits (``2024-05-01T12:00:00.000000Z``), the
only form the API server's decoder accepts.  The client's own models render
a ``datetime`` with :meth:`~datetime.datetime.isoformat`, which drops the
fraction when it is zero and makes the server answer 400, so the bodies
carry :class:`MicroTime` values, which render correctly.  Reads bypass the
client's models (``_preload_content=False``) and keep the Lease as plain
JSON, so a replace preserves labels, annotations and owner references.

:attr:`LeaderElector.is_leader` is thread-safe and conservative: it turns
false as soon as ``renew_deadline`` has passed since the last successful
renewal, even while the election thread is still blocked in a request.

:class:`LeaderGate` wraps a pipeline output so that ``on_change``/``tick``
reach it only while this replica leads.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import random
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from kubernetes import client as k8s_client
from kubernetes.client.exceptions import ApiException

from accelscope.logs import RateLimiter, event

__all__ = [
    "DEFAULT_LEASE_NAME",
    "SERVICE_ACCOUNT_NAMESPACE_FILE",
    "LeaderElector",
    "LeaderGate",
    "LeaseRecord",
    "MicroTime",
    "default_identity",
    "format_microtime",
    "namespace_from_environment",
    "parse_microtime",
]

log = logging.getLogger(__name__)

DEFAULT_LEASE_NAME = "accelscope-collector"
SERVICE_ACCOUNT_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


# --------------------------------------------------------------------------- helpers


def default_identity() -> str:
    """``<hostname>_<uuid>``: the pod name (a pod's hostname) plus a random
    part, so a restarted container never mistakes the old one's Lease for its own."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


def namespace_from_environment(env: dict[str, str] | None = None,
                               path: str = SERVICE_ACCOUNT_NAMESPACE_FILE) -> str | None:
    """The pod's namespace: ``$POD_NAMESPACE`` (downward API), else the
    mounted service account's ``namespace`` file; ``None`` when neither."""
    env = os.environ if env is None else env
    ns = (env.get("POD_NAMESPACE") or "").strip()
    if ns:
        return ns
    try:
        with open(path, encoding="utf-8") as f:
            ns = f.read().strip()
    except OSError:
        return None
    return ns or None


class MicroTime(datetime):
    """A UTC ``datetime`` whose :meth:`isoformat` is Kubernetes' ``MicroTime``
    wire form (``2006-01-02T15:04:05.000000Z``), also when the fraction is zero.
    The client serialises request bodies through ``isoformat``."""

    @classmethod
    def from_unix(cls, t: float) -> "MicroTime":
        d = datetime.fromtimestamp(t, timezone.utc)
        return cls(d.year, d.month, d.day, d.hour, d.minute, d.second, d.microsecond, tzinfo=timezone.utc)

    def isoformat(self, sep: str = "T", timespec: str = "auto") -> str:  # noqa: ARG002 - fixed wire form
        return format_microtime(self)

    def __str__(self) -> str:
        return self.isoformat()


def format_microtime(t: float | datetime) -> str:
    """Unix seconds (or an aware ``datetime``) as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    if not isinstance(t, datetime):
        t = datetime.fromtimestamp(t, timezone.utc)
    elif t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return datetime.astimezone(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_RFC3339_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def parse_microtime(value: Any) -> float | None:
    """An RFC 3339 time (any number of fractional digits) as Unix seconds;
    ``None`` when absent or malformed."""
    if not isinstance(value, str):
        return None
    m = _RFC3339_RE.match(value.strip())
    if m is None:
        return None
    date, hms, frac, tz = m.groups()
    frac = (frac or ".0")[:7].ljust(7, "0")
    tz = "+00:00" if tz in ("Z", "z") else tz
    try:
        return datetime.fromisoformat(f"{date}T{hms}{frac}{tz}").timestamp()
    except ValueError:
        return None


@dataclass(frozen=True)
class LeaseRecord:
    """The election-relevant part of a Lease as read (``raw``: the object)."""

    holder: str
    lease_duration: int | None
    acquire_time: float | None
    renew_time: float | None
    transitions: int
    resource_version: str
    raw: dict[str, Any] = field(compare=False, repr=False)

    @classmethod
    def from_object(cls, obj: dict[str, Any]) -> "LeaseRecord":
        md = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        dur = spec.get("leaseDurationSeconds")
        trans = spec.get("leaseTransitions")
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            lease_duration=dur if isinstance(dur, int) and not isinstance(dur, bool) else None,
            acquire_time=parse_microtime(spec.get("acquireTime")),
            renew_time=parse_microtime(spec.get("renewTime")),
            transitions=trans if isinstance(trans, int) and not isinstance(trans, bool) and trans >= 0 else 0,
            resource_version=str(md.get("resourceVersion") or ""),
            raw=obj,
        )

    @property
    def key(self) -> tuple:
        """What changes when a holder renews or a new one acquires (not the
        resourceVersion: an annotation edit is not a sign of life)."""
        spec = self.raw.get("spec") or {}
        return (self.holder, spec.get("renewTime"), spec.get("acquireTime"), self.transitions, self.lease_duration)


# --------------------------------------------------------------------------- elector


class LeaderElector:
    """Elect one leader among replicas through the Lease ``namespace/name``.

    ``api_client``: a configured :class:`kubernetes.client.ApiClient` (e.g.
    the Kubernetes source's).  ``identity``: this replica's
    ``holderIdentity`` (default :func:`default_identity`).
    ``lease_duration`` (whole seconds, written as ``leaseDurationSeconds``),
    ``renew_deadline`` and ``retry_period``: as client-go's (defaults 15, 10,
    2); ``lease_duration > renew_deadline > retry_period * (1 + jitter)``.
    ``request_timeout``: seconds per API request (default
    ``renew_deadline / 2``, at most 10).  ``clock``: Unix seconds (the
    Lease's times and all deadlines).  ``sleep``: the wait between attempts
    (default: an interruptible wait that :meth:`stop` cuts short).
    ``on_started_leading`` / ``on_stopped_leading``: called with no arguments
    on each change of leadership, in pairs (a replica that never led never
    gets ``on_stopped_leading``), from the election thread (or from
    :meth:`stop`); keep them quick, an exception is logged and ignored.
    ``release_on_stop``: release the Lease in :meth:`stop`.  ``rng``: jitter
    source.  ``labels``: put on a Lease this replica creates.

    ``stats`` counts ``acquired``, ``renewed``, ``lost``, ``conflicts``,
    ``released`` and ``errors_<reason>`` (``http_<status>``, ``connection``,
    ``timeout`` or an exception class name).
    """

    def __init__(
        self,
        api_client: k8s_client.ApiClient,
        *,
        namespace: str,
        name: str = DEFAULT_LEASE_NAME,
        identity: str | None = None,
        lease_duration: int = 15,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Any] | None = None,
        on_started_leading: Callable[[], Any] | None = None,
        on_stopped_leading: Callable[[], Any] | None = None,
        release_on_stop: bool = True,
        request_timeout: float | None = None,
        jitter: float = 0.2,
        rng: random.Random | None = None,
        labels: dict[str, str] | None = None,
    ) -> None:
        if not namespace:
            raise ValueError("namespace is required")
        if not name:
            raise ValueError("name is required")
        if isinstance(lease_duration, bool) or int(lease_duration) != lease_duration or lease_duration < 1:
            raise ValueError(f"lease_duration must be a whole number of seconds >= 1, got {lease_duration!r}")
        if not 0 <= jitter <= 1:
            raise ValueError(f"jitter must be in [0, 1], got {jitter!r}")
        if retry_period <= 0:
            raise ValueError("retry_period must be > 0")
        if not renew_deadline > retry_period * (1 + jitter):
            raise ValueError(f"renew_deadline ({renew_deadline}) must exceed retry_period * (1 + jitter) "
                             f"({retry_period * (1 + jitter)})")
        if not lease_duration > renew_deadline:
            raise ValueError(f"lease_duration ({lease_duration}) must exceed renew_deadline ({renew_deadline})")
        self.api_client = api_client
        self.api = k8s_client.CoordinationV1Api(api_client)
        self.namespace = namespace
        self.name = name
        self.identity = identity or default_identity()
        self.lease_duration = int(lease_duration)
        self.renew_deadline = float(renew_deadline)
        self.retry_period = float(retry_period)
        self.request_timeout = float(request_timeout) if request_timeout else max(0.05, min(renew_deadline / 2, 10.0))
        self.jitter = float(jitter)
        self.release_on_stop = release_on_stop
        self.labels = dict(labels or {})
        self.on_started_leading = on_started_leading
        self.on_stopped_leading = on_stopped_leading
        self.stats: collections.Counter[str] = collections.Counter()
        self._clock = clock
        self._rng = rng or random.Random()
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait
        self._lock = threading.Lock()  # guards the leadership state below
        self._step_lock = threading.Lock()  # one attempt at a time (thread, stop(), tests)
        self._leading = False
        self._last_renew: float | None = None  # clock() before the last successful write
        self._closed = False
        self._observed: LeaseRecord | None = None
        self._observed_at = 0.0
        self._observed_change = False  # True once a change of the record was seen
        self._thread: threading.Thread | None = None
        self._limiter = RateLimiter(60.0)

    # ------------------------------------------------------------ state

    @property
    def lease(self) -> str:
        """``namespace/name`` of the Lease."""
        return f"{self.namespace}/{self.name}"

    @property
    def is_leader(self) -> bool:
        """True while this replica leads: it holds the Lease and renewed it
        less than ``renew_deadline`` seconds ago.  Thread-safe."""
        with self._lock:
            if not self._leading or self._last_renew is None:
                return False
            return self._clock() - self._last_renew <= self.renew_deadline

    @property
    def holder(self) -> str | None:
        """The ``holderIdentity`` last read or written (``""``: released;
        ``None``: not read yet)."""
        with self._lock:
            return self._observed.holder if self._observed is not None else None

    @property
    def leader_transitions(self) -> int | None:
        """``leaseTransitions`` last read or written."""
        with self._lock:
            return self._observed.transitions if self._observed is not None else None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> "LeaderElector":
        """Run the election in a daemon thread.  Returns self."""
        if self._thread is not None:
            raise RuntimeError("already started")
        if self._closed:
            raise RuntimeError("stopped electors cannot be restarted")
        self._thread = threading.Thread(target=self._run, name=f"leader-elector-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop the election: end the thread, step down (calling
        ``on_stopped_leading`` if leading) and, with ``release_on_stop``,
        release the Lease if this replica holds it.  Idempotent."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.renew_deadline + 2 * self.request_timeout if timeout is None else timeout)
        with self._lock:
            already = self._closed
            self._closed = True
        if already:
            return
        self._step_down("stopped")
        if self.release_on_stop:
            # wait for an attempt still in flight (a thread that outlived the join), within reason
            got = self._step_lock.acquire(timeout=2 * self.request_timeout)
            try:
                self.release()
            finally:
                if got:
                    self._step_lock.release()

    def __enter__(self) -> "LeaderElector":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            leading = self.step()
            if self._stop.is_set():
                break
            delay = self.retry_period
            if not leading:
                delay *= 1 + self.jitter * self._rng.random()
            self._sleep(delay)

    # ------------------------------------------------------------ one attempt

    def step(self) -> bool:
        """One attempt to acquire or renew the Lease (the election thread runs
        this every ``retry_period``; tests may call it directly with an
        injected clock).  Steps down when another replica holds the Lease or
        ``renew_deadline`` has passed without a renewal.  Returns :attr:`is_leader`."""
        with self._step_lock:
            if self._closed:
                return False
            try:
                outcome = self._try_acquire_or_renew()
            except Exception as exc:  # noqa: BLE001 - any failure is one failed attempt
                self._error(exc)
                outcome = "failed"
            if outcome == "held":
                self._step_down("another replica holds the lease")
            elif outcome == "failed":
                with self._lock:
                    overdue = (self._leading and self._last_renew is not None
                               and self._clock() - self._last_renew > self.renew_deadline)
                if overdue:
                    self._step_down(f"no renewal for {self.renew_deadline:g}s")
            return self.is_leader

    def _try_acquire_or_renew(self) -> str:
        """``leader`` (written), ``held`` (another replica holds a valid
        Lease) or ``failed`` (conflicts twice in a row).  Raises on API errors."""
        for _attempt in range(2):
            current = self._read()
            if current is None:
                t = self._clock()
                try:
                    created = self._create(t)
                except ApiException as exc:
                    if exc.status == 409:  # AlreadyExists: another replica created it first
                        self.stats["conflicts"] += 1
                        continue
                    raise
                self._won(created, t)
                return "leader"
            rec = LeaseRecord.from_object(current)
            now = self._clock()
            self._observe(rec, now)
            if rec.holder != self.identity and not self._expired(rec, now):
                return "held"
            t = self._clock()
            try:
                updated = self._replace(rec, t)
            except ApiException as exc:
                if exc.status == 409:  # Conflict: someone wrote between our read and our write
                    self.stats["conflicts"] += 1
                    continue
                raise
            self._won(updated, t)
            return "leader"
        return "failed"

    def _expired(self, rec: LeaseRecord, now: float) -> bool:
        if not rec.holder:
            return True  # released (or never held)
        dur = rec.lease_duration
        if not dur or dur <= 0:
            return True
        with self._lock:
            local_age = now - self._observed_at
            seen_change = self._observed_change
        if local_age > dur:
            return True  # unchanged for a whole duration by our own clock
        if seen_change:
            return False  # we saw it renewed less than a duration ago
        if rec.renew_time is None:
            return False
        return rec.renew_time + dur < now

    def _observe(self, rec: LeaseRecord, now: float) -> None:
        with self._lock:
            if self._observed is None or self._observed.key != rec.key:
                self._observed_change = self._observed is not None
                self._observed_at = now
            self._observed = rec

    def _won(self, obj: dict[str, Any], t: float) -> None:
        rec = LeaseRecord.from_object(obj)
        with self._lock:
            if self._observed is None or self._observed.key != rec.key:
                self._observed_change = True
                self._observed_at = t
            self._observed = rec
            if self._closed:  # stop() ran meanwhile: do not lead again
                return
            was = self._leading
            self._leading = True
            self._last_renew = t
        if was:
            self.stats["renewed"] += 1
            return
        self.stats["acquired"] += 1
        event("leader_elected", lease=self.lease, identity=self.identity, transitions=rec.transitions)
        self._callback(self.on_started_leading, "on_started_leading")

    def _step_down(self, reason: str) -> None:
        with self._lock:
            was = self._leading
            self._leading = False
        if not was:
            return
        if reason != "stopped":
            self.stats["lost"] += 1
        event("leader_stepped_down", logging.WARNING if reason != "stopped" else logging.INFO,
              lease=self.lease, identity=self.identity, reason=reason)
        self._callback(self.on_stopped_leading, "on_stopped_leading")

    def _callback(self, fn: Callable[[], Any] | None, what: str) -> None:
        if fn is None:
            return
        try:
            fn()
        except Exception:  # noqa: BLE001 - a callback never breaks the election
            log.exception("leader election %s callback failed", what)

    def _error(self, exc: BaseException) -> None:
        if isinstance(exc, ApiException):
            reason = f"http_{exc.status}" if exc.status else "connection"
        else:
            text = type(exc).__name__
            reason = "timeout" if "Timeout" in text else "connection" if (
                "Connection" in text or "MaxRetry" in text or "Protocol" in text) else text
        self.stats[f"errors_{reason}"] += 1
        allowed, suppressed = self._limiter.allow(reason)
        if allowed:
            detail = f"{exc.status} {exc.reason}" if isinstance(exc, ApiException) else f"{type(exc).__name__}: {exc}"
            event("leader_election_error", logging.WARNING, lease=self.lease, reason=reason,
                  detail=detail[:300], suppressed=suppressed)

    # ------------------------------------------------------------ API calls

    @staticmethod
    def _json(resp: Any) -> dict[str, Any]:
        try:
            data = resp.data
        finally:
            release = getattr(resp, "release_conn", None)
            if release is not None:
                release()
        obj = json.loads(data)
        if not isinstance(obj, dict):
            raise ValueError("the API answered a Lease that is not a JSON object")
        return obj

    def _read(self) -> dict[str, Any] | None:
        try:
            resp = self.api.read_namespaced_lease(self.name, self.namespace, _preload_content=False,
                                                  _request_timeout=self.request_timeout)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return self._json(resp)

    def _spec(self, t: float, *, acquire: float | MicroTime, transitions: int,
              holder: str | None = None, duration: int | None = None,
              carry: dict[str, Any] | None = None) -> k8s_client.V1LeaseSpec:
        now = MicroTime.from_unix(t)
        kwargs: dict[str, Any] = {}
        for key, attr in (("strategy", "strategy"), ("preferredHolder", "preferred_holder")):
            if carry and carry.get(key) is not None:
                kwargs[attr] = carry[key]
        return k8s_client.V1LeaseSpec(
            holder_identity=self.identity if holder is None else holder,
            lease_duration_seconds=self.lease_duration if duration is None else duration,
            acquire_time=acquire if isinstance(acquire, MicroTime) else MicroTime.from_unix(acquire),
            renew_time=now,
            lease_transitions=transitions,
            **kwargs,
        )

    @staticmethod
    def _metadata(raw: dict[str, Any]) -> k8s_client.V1ObjectMeta:
        """The object metadata a replace must send back (what is not sent is
        cleared by a PUT): name, namespace, resourceVersion, labels,
        annotations, owner references and finalizers."""
        md = raw.get("metadata") or {}
        owners = []
        for o in md.get("ownerReferences") or []:
            if isinstance(o, dict) and all(o.get(k) for k in ("apiVersion", "kind", "name", "uid")):
                owners.append(k8s_client.V1OwnerReference(
                    api_version=o["apiVersion"], kind=o["kind"], name=o["name"], uid=o["uid"],
                    controller=o.get("controller"), block_owner_deletion=o.get("blockOwnerDeletion")))
        return k8s_client.V1ObjectMeta(
            name=md.get("name"), namespace=md.get("namespace"), resource_version=md.get("resourceVersion"),
            labels=md.get("labels") or None, annotations=md.get("annotations") or None,
            owner_references=owners or None, finalizers=md.get("finalizers") or None)

    def _create(self, t: float) -> dict[str, Any]:
        body = k8s_client.V1Lease(
            api_version="coordination.k8s.io/v1", kind="Lease",
            metadata=k8s_client.V1ObjectMeta(name=self.name, namespace=self.namespace, labels=self.labels or None),
            spec=self._spec(t, acquire=t, transitions=0),
        )
        resp = self.api.create_namespaced_lease(self.namespace, body, _preload_content=False,
                                                _request_timeout=self.request_timeout)
        return self._json(resp)

    def _replace(self, rec: LeaseRecord, t: float) -> dict[str, Any]:
        raw_spec = rec.raw.get("spec") or {}
        if rec.holder == self.identity:  # renewal: keep acquireTime and the count
            acquired = rec.acquire_time if rec.acquire_time is not None else t
            transitions = rec.transitions
        else:  # a new holder
            acquired = t
            transitions = rec.transitions + 1
        body = k8s_client.V1Lease(
            api_version="coordination.k8s.io/v1", kind="Lease", metadata=self._metadata(rec.raw),
            spec=self._spec(t, acquire=acquired, transitions=transitions, carry=raw_spec),
        )
        resp = self.api.replace_namespaced_lease(self.name, self.namespace, body, _preload_content=False,
                                                 _request_timeout=self.request_timeout)
        return self._json(resp)

    def release(self) -> bool:
        """Give the Lease up if this replica holds it: ``holderIdentity``
        empty, ``leaseDurationSeconds`` 1, ``renewTime``/``acquireTime`` now,
        ``leaseTransitions`` kept, so another replica acquires it at its next
        attempt.  Steps down first.  :meth:`stop` calls it; called alone while
        the election thread runs, the thread may acquire the Lease again at
        its next attempt.  Returns True when released; failures are logged
        and counted, never raised."""
        self._step_down("released")
        try:
            current = self._read()
            if current is None:
                return False
            rec = LeaseRecord.from_object(current)
            if rec.holder != self.identity:
                return False
            t = self._clock()
            body = k8s_client.V1Lease(
                api_version="coordination.k8s.io/v1", kind="Lease", metadata=self._metadata(current),
                spec=self._spec(t, acquire=t, transitions=rec.transitions, holder="", duration=1,
                                carry=current.get("spec") or {}),
            )
            resp = self.api.replace_namespaced_lease(self.name, self.namespace, body, _preload_content=False,
                                                     _request_timeout=self.request_timeout)
            released = self._json(resp)
        except Exception as exc:  # noqa: BLE001 - releasing is best effort; the Lease expires anyway
            if isinstance(exc, ApiException) and exc.status == 409:
                self.stats["conflicts"] += 1
            self._error(exc)
            return False
        with self._lock:
            self._observed = LeaseRecord.from_object(released)
            self._observed_at = t
            self._observed_change = True
        self.stats["released"] += 1
        event("leader_released", lease=self.lease, identity=self.identity)
        return True


# --------------------------------------------------------------------------- gate


_GATE_CLASSES: dict[type, type] = {}


class LeaderGate:
    """A pipeline output that forwards ``on_change``/``tick`` to ``output``
    only while ``leader`` leads; ``leader`` is an object with an
    ``is_leader`` attribute (a :class:`LeaderElector`) or a callable
    returning a bool.

    ``on_gain(output)`` / ``on_loss(output)``: called on the pipeline's
    thread (where the engine may be read) at the first call after
    leadership was gained / lost, before the call is forwarded or dropped:
    e.g. back-fill the history with the engine's current decisions when
    taking over, flush it when stepping down.  An exception there is logged
    and counted in ``errors``, never raised.

    Each gate's class is named after the wrapped output's class, so the
    pipeline's per-output error counts (``type(out).__name__``) keep their
    names; ``isinstance(gate, LeaderGate)`` holds.  Other attributes are
    read through to ``output``.  ``dropped`` counts changes not forwarded.
    """

    def __new__(cls, output: Any, *args: Any, **kwargs: Any) -> "LeaderGate":
        if cls is LeaderGate:
            inner = type(output)
            sub = _GATE_CLASSES.get(inner)
            if sub is None:
                sub = type(inner.__name__, (LeaderGate,), {
                    "__qualname__": f"LeaderGate[{inner.__qualname__}]", "__module__": __name__})
                _GATE_CLASSES[inner] = sub
            cls = sub
        return super().__new__(cls)

    def __init__(self, output: Any, leader: Any, *, on_gain: Callable[[Any], Any] | None = None,
                 on_loss: Callable[[Any], Any] | None = None) -> None:
        self.output = output
        self.leader = leader
        self.on_gain = on_gain
        self.on_loss = on_loss
        self.dropped = 0
        self.errors = 0
        self._leading = False

    def _is_leader(self) -> bool:
        probe = self.leader
        value = probe() if callable(probe) and not hasattr(probe, "is_leader") else probe.is_leader
        return bool(value)

    def leading(self) -> bool:
        """Whether this replica leads now; runs ``on_gain``/``on_loss`` on a change."""
        now = self._is_leader()
        if now != self._leading:
            self._leading = now
            hook = self.on_gain if now else self.on_loss
            if hook is not None:
                try:
                    hook(self.output)
                except Exception:  # noqa: BLE001 - a hook never stops the pipeline
                    self.errors += 1
                    log.exception("leader gate %s hook of %s failed", "on_gain" if now else "on_loss",
                                  type(self.output).__name__)
        return now

    def on_change(self, change: Any) -> None:
        if self.leading():
            self.output.on_change(change)
        else:
            self.dropped += 1

    def tick(self) -> Any:
        if self.leading():
            tick = getattr(self.output, "tick", None)
            if tick is not None:
                return tick()
        return None

    def __getattr__(self, name: str) -> Any:
        if name in ("output", "leader", "on_gain", "on_loss", "dropped", "errors", "_leading") \
                or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.output, name)

    def __repr__(self) -> str:
        return f"LeaderGate({self.output!r})"
