"""Pod UID -> (namespace, name) through the Kubernetes API.

HAMi-core directories are named ``<podUID>_<container>``; this resolver
turns the UID into the pod's namespace and name.  It lists the pods bound
to this node (field selector ``spec.nodeName=<node>``) every ``refresh``
seconds in a background thread, so lookups on the collection path are a
dict read.  When the API is unreachable, lookups return ``None`` and the
exporter labels the slice with the UID alone (``k8s_pod_uid``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from accelscope.logs import RateLimiter, event

@dataclass(frozen=True, slots=True)
class PodInfo:
    """One pod bound to this node: identity, container names in spec order,
    and annotations (the PodResources fallback reads HAMi's
    ``*-devices-allocated`` ones)."""

    uid: str
    namespace: str
    name: str
    containers: tuple[str, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)


ListPods = Callable[[], "list[PodInfo]"]


def kube_pod_lister(node_name: str, request_timeout: float = 10.0) -> ListPods:
    """A pod lister backed by the Kubernetes API (in-cluster config, else
    ~/.kube/config), limited to the pods bound to ``node_name``.  The client
    is created on the first call, so building a lister never touches the API."""
    api = None

    def list_pods() -> list[PodInfo]:
        nonlocal api
        if api is None:
            from kubernetes import client, config

            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
            api = client.CoreV1Api()
        selector = f"spec.nodeName={node_name}" if node_name else None
        pods = api.list_pod_for_all_namespaces(field_selector=selector, _request_timeout=request_timeout)
        return [PodInfo(p.metadata.uid, p.metadata.namespace, p.metadata.name,
                        tuple(c.name for c in (p.spec.containers or [])),
                        dict(p.metadata.annotations or {})) for p in pods.items]

    return list_pods


class PodNameResolver:
    """``lookup(uid) -> (namespace, name) | None``.

    ``list_pods``: returns ``[PodInfo]``; default: :func:`kube_pod_lister`
    for ``node_name``.  :meth:`pods` hands the last good list to other users
    (the PodResources attributor's annotation fallback), so the node's pods
    are listed once per refresh, not once per user.
    """

    def __init__(self, node_name: str = "", refresh: float = 30.0, list_pods: ListPods | None = None) -> None:
        self.node_name = node_name
        self.refresh = refresh
        self._list_pods = list_pods
        self._pods: dict[str, tuple[str, str]] = {}
        self._last: list[PodInfo] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._limiter = RateLimiter(600)

    def lookup(self, uid: str) -> tuple[str, str] | None:
        return self._pods.get(uid)

    def refresh_once(self) -> bool:
        """List pods now; returns False (and logs, rate-limited) on failure."""
        try:
            if self._list_pods is None:
                self._list_pods = kube_pod_lister(self.node_name)
            pods = self._list_pods()
        except Exception as exc:  # noqa: BLE001 - API trouble must not stop attribution by UID
            if self._limiter.allow("list")[0]:
                event("pod_list_failed", logging.WARNING, detail=f"{type(exc).__name__}: {exc}")
            return False
        self._last = list(pods)
        self._pods = {p.uid: (p.namespace, p.name) for p in self._last}
        return True

    def pods(self) -> list[PodInfo]:
        """The pods of the last successful list (empty before the first)."""
        return self._last

    def start(self) -> None:
        self.refresh_once()
        self._thread = threading.Thread(target=self._run, name="pod-resolver", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.refresh):
            self.refresh_once()

    def stop(self) -> None:
        self._stop.set()
