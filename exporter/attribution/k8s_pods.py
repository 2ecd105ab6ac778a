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
from collections.abc import Callable

from accelscope.logs import RateLimiter, event

ListPods = Callable[[], list[tuple[str, str, str]]]


def _kube_list_pods(node_name: str) -> ListPods:
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    api = client.CoreV1Api()
    selector = f"spec.nodeName={node_name}" if node_name else None

    def list_pods() -> list[tuple[str, str, str]]:
        pods = api.list_pod_for_all_namespaces(field_selector=selector, _request_timeout=10)
        return [(p.metadata.uid, p.metadata.namespace, p.metadata.name) for p in pods.items]

    return list_pods


class PodNameResolver:
    """``lookup(uid) -> (namespace, name) | None``.

    ``list_pods``: returns ``[(uid, namespace, name)]``; default: the
    Kubernetes API through the ``kubernetes`` client (in-cluster config,
    else ~/.kube/config), pods on ``node_name`` only.
    """

    def __init__(self, node_name: str = "", refresh: float = 30.0, list_pods: ListPods | None = None) -> None:
        self.node_name = node_name
        self.refresh = refresh
        self._list_pods = list_pods
        self._pods: dict[str, tuple[str, str]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._limiter = RateLimiter(600)

    def lookup(self, uid: str) -> tuple[str, str] | None:
        return self._pods.get(uid)

    def refresh_once(self) -> bool:
        """List pods now; returns False (and logs, rate-limited) on failure."""
        try:
            if self._list_pods is None:
                self._list_pods = _kube_list_pods(self.node_name)
            pods = self._list_pods()
        except Exception as exc:  # noqa: BLE001 - API trouble must not stop attribution by UID
            if self._limiter.allow("list")[0]:
                event("pod_list_failed", logging.WARNING, detail=f"{type(exc).__name__}: {exc}")
            return False
        self._pods = {uid: (ns, name) for uid, ns, name in pods}
        return True

    def start(self) -> None:
        self.refresh_once()
        self._thread = threading.Thread(target=self._run, name="pod-resolver", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.refresh):
            self.refresh_once()

    def stop(self) -> None:
        self._stop.set()
