"""The collector's input unit: one Kubernetes object change.

Every source (the live watch, a recorded JSON-lines stream, a ``kubectl get
-o json`` dump, the trace simulator) produces :class:`ObjectEvent` values in
order; the decision engine consumes them.  Objects stay plain dicts in the
API's JSON shape, so decoders can be tested on real captures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: resource kinds the collector follows; ``Event`` is core/v1, ``EventV1``
#: is events.k8s.io/v1 (the two shapes differ: note vs message, regarding vs
#: involvedObject, series).
KINDS = ("Pod", "Node", "Event", "EventV1", "PodGroup", "ResourceClaim", "ResourceSlice")

#: watch event types (``SYNC`` marks an object from an initial list/relist;
#: ``BOOKMARK`` carries only a resourceVersion).
TYPES = ("ADDED", "MODIFIED", "DELETED", "SYNC", "BOOKMARK")


@dataclass(slots=True)
class ObjectEvent:
    """One change of one object.

    ``kind``: one of :data:`KINDS`.  ``type``: one of :data:`TYPES`.
    ``obj``: the object as the API serialises it (dict with ``metadata``...).
    ``received``: Unix seconds when the collector saw it (the replay clock
    for recorded streams).
    """

    kind: str
    type: str
    obj: dict[str, Any]
    received: float = 0.0

    @property
    def uid(self) -> str:
        return (self.obj.get("metadata") or {}).get("uid", "")

    def to_json(self) -> dict[str, Any]:
        """The JSON-lines record shape (see docs/formats.md, recorded streams)."""
        return {"kind": self.kind, "type": self.type, "received": self.received, "object": self.obj}
