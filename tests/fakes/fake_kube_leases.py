"""``coordination.k8s.io/v1`` Leases for the fake API server (leader election).

:class:`FakeKubeAPIWithLeases` is a :class:`~tests.fakes.fake_kube_api.FakeKubeAPI`
that also serves the Lease resource, with the writes leader election needs,
over HTTP::

    with run_fake_kube_api_with_leases() as api:
        cfg = kubernetes.client.Configuration(host=api.url)
        coord = kubernetes.client.CoordinationV1Api(kubernetes.client.ApiClient(cfg))
        ...
        api.lease("accelscope-collector", "ns")     # the stored object (or None)

It plugs in from outside (a subclass; ``fake_kube_api.py`` and its module
level ``RESOURCES`` are untouched, so other tests' fakes do not change):
the injection API (``create``/``update``/``modify``/``delete``/``get``/
``objects``) knows the key ``coordination.k8s.io/leases``; watchers of the
other resources never see Lease changes.

Paths (``/apis/coordination.k8s.io/v1``, namespaced)::

    GET    .../leases                           list (+ watch=true), all namespaces
    GET    .../namespaces/{ns}/leases           list (+ watch=true)
    POST   .../namespaces/{ns}/leases           create  -> 201; 409 AlreadyExists
    GET    .../namespaces/{ns}/leases/{name}    read    -> 200; 404 NotFound
    PUT    .../namespaces/{ns}/leases/{name}    replace -> 200; 409 Conflict on a
                                                stale metadata.resourceVersion
    DELETE .../namespaces/{ns}/leases/{name}    delete  -> 200 Status Success

Modelled after the real API server (``pkg/registry/coordination/lease``):

* leases are updated only conditionally (``AllowUnconditionalUpdate`` is
  false): a PUT without ``metadata.resourceVersion`` is 422 ``Invalid``
  (``must be specified for an update``), one with a different
  resourceVersion is 409 ``Conflict`` (``the object has been modified;
  please apply your changes to the latest version and try again``);
* a PUT to a missing Lease without a resourceVersion creates it (201;
  ``AllowCreateOnUpdate`` is true);
* ``spec.acquireTime``/``spec.renewTime`` are ``MicroTime``: they must be
  RFC 3339 with exactly six fractional digits, as Go parses
  ``2006-01-02T15:04:05.000000Z07:00`` (otherwise 400 ``BadRequest``, like
  the real decoder), and are stored normalised to UTC (``...Z``);
* validation (422 ``Invalid``): ``spec.leaseDurationSeconds`` > 0,
  ``spec.leaseTransitions`` >= 0, names are DNS subdomains, the body's
  namespace/name match the URL's, ``kind``/``apiVersion`` when present
  are ``Lease``/``coordination.k8s.io/v1`` (400 otherwise);
* server-owned fields (``uid``, ``creationTimestamp``, ``resourceVersion``)
  are set by the server; an update that changes nothing keeps the
  resourceVersion (no new revision);
* :meth:`FakeKubeAPI.fail_next` applies to these paths as to the others.

Simplified: no PATCH (405), no ``dryRun``, no ``fieldValidation=Strict``
(unknown fields are kept, not warned about), no ``managedFields``, no
``preferredHolder``/``strategy`` validation, a PUT to a missing Lease that
carries a resourceVersion is 404.
"""

from __future__ import annotations

import copy
import json
import re
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

from aiohttp import web

from tests.fakes.fake_kube_api import (
    FakeKubeAPI,
    RecordedRequest,
    Resource,
    _HTTPError,
    _parse_field_selector,
    _parse_label_selector,
    _Query,
    _status,
)

__all__ = ["LEASES", "LEASE_GROUP", "FakeKubeAPIWithLeases", "run_fake_kube_api_with_leases", "make_lease"]

LEASE_GROUP = "coordination.k8s.io"
LEASES = Resource("coordination.k8s.io/leases", LEASE_GROUP, "v1", "leases", "Lease", True)
_QUALIFIED = "leases.coordination.k8s.io"
_PREFIX = f"/apis/{LEASE_GROUP}"

#: Go's layout for MicroTime, as a pattern: exactly six fractional digits
_MICROTIME_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.(\d{6})(Z|[+-]\d{2}:\d{2})$")
_DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_OPTIMISTIC_LOCK = "the object has been modified; please apply your changes to the latest version and try again"


def _parse_microtime(value: str) -> str:
    """Normalise a MicroTime to UTC ``YYYY-MM-DDTHH:MM:SS.ffffffZ``; raises
    ``_HTTPError(400)`` on anything Go's RFC3339Micro layout rejects."""
    m = _MICROTIME_RE.match(value) if isinstance(value, str) else None
    if m is None:
        raise _HTTPError(
            400,
            f'Lease in version "v1" cannot be handled as a Lease: parsing time {json.dumps(value)} as '
            f'"2006-01-02T15:04:05.000000Z07:00": cannot parse as RFC3339 with microseconds',
            "BadRequest",
        )
    y, mo, d, h, mi, s, frac, tz = m.groups()
    try:
        offset = timedelta(0)
        if tz != "Z":
            sign = 1 if tz[0] == "+" else -1
            offset = sign * timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6]))
        t = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), int(frac), tzinfo=timezone(offset))
    except ValueError as exc:
        raise _HTTPError(400, f"parsing time {json.dumps(value)}: {exc}", "BadRequest") from None
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def make_lease(
    name: str,
    namespace: str = "default",
    *,
    holder: str | None = None,
    lease_duration: int | None = 15,
    renew_time: float | None = None,
    acquire_time: float | None = None,
    transitions: int | None = None,
) -> dict[str, Any]:
    """A Lease as the API serialises it (times: Unix seconds)."""

    def micro(t: float) -> str:
        return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    spec: dict[str, Any] = {}
    if holder is not None:
        spec["holderIdentity"] = holder
    if lease_duration is not None:
        spec["leaseDurationSeconds"] = lease_duration
    if acquire_time is not None:
        spec["acquireTime"] = micro(acquire_time)
    if renew_time is not None:
        spec["renewTime"] = micro(renew_time)
    if transitions is not None:
        spec["leaseTransitions"] = transitions
    return {"apiVersion": LEASES.api_version, "kind": "Lease",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


class FakeKubeAPIWithLeases(FakeKubeAPI):
    """The fake API server plus ``coordination.k8s.io/v1`` Leases (see the
    module docstring).  Takes the same keyword arguments."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.installed_groups.add(LEASE_GROUP)
        self._objects[LEASES.key] = {}

    # ------------------------------------------------------------ helpers for tests

    def lease(self, name: str, namespace: str = "default") -> dict[str, Any] | None:
        """A copy of the stored Lease, or ``None``."""
        return self.get(LEASES.key, name, namespace)

    def clear_failures(self) -> None:
        """Forget every pending :meth:`fail_next` (an outage ends)."""
        self._call(self._failures.clear)

    # ------------------------------------------------------------ plumbing into the base

    def _resource(self, resource: str) -> Resource:
        if resource == LEASES.key:
            return LEASES
        return super()._resource(resource)

    def _group(self, group: str) -> dict[str, Any]:
        if group != LEASE_GROUP:
            return super()._group(group)
        gv = [{"groupVersion": LEASES.api_version, "version": LEASES.version}]
        return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": gv, "preferredVersion": gv[0]}

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path != _PREFIX and not path.startswith(_PREFIX + "/"):
            return await super()._handle(request)
        rec = RecordedRequest(request.method, path, dict(request.query), time.time())
        self.requests.append(rec)
        try:
            failure = self._take_failure(rec)
            if failure is not None:
                raise _HTTPError(failure.status, failure.message, failure.reason)
            return await self._route_leases(request, rec)
        except _HTTPError as err:
            rec.status = err.code
            return web.json_response(_status(err.code, err.message, err.reason), status=err.code)

    # ------------------------------------------------------------ routing

    async def _route_leases(self, request: web.Request, rec: RecordedRequest) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p][2:]  # after "apis", group
        not_found = _HTTPError(404, "the server could not find the requested resource")
        method = request.method
        if not parts:
            self._only(method, "GET")
            return self._json(rec, self._group(LEASE_GROUP))
        if parts[0] != LEASES.version:
            raise not_found
        rest = parts[1:]
        if not rest:
            self._only(method, "GET")
            return self._json(rec, self._lease_resource_list())
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        if rest[0] != LEASES.plural or len(rest) > 2:
            raise not_found
        if len(rest) == 1:  # collection
            if method == "GET":
                q = request.query
                query = _Query(LEASES, namespace, _parse_field_selector(q.get("fieldSelector", ""), LEASES),
                               _parse_label_selector(q.get("labelSelector", "")))
                if rec.watch:
                    return await self._watch(request, rec, query)
                return self._json(rec, self._list(q, query))
            if method == "POST" and namespace is not None:
                body = await self._body(request)
                obj = self._create_lease(namespace, body)
                rec.status = 201
                return web.json_response(obj, status=201)
            raise _HTTPError(405, "the server does not allow this method on the requested resource")
        if namespace is None:
            raise not_found
        name = rest[1]
        if method == "GET":
            obj = self._objects[LEASES.key].get(f"{namespace}/{name}")
            if obj is None:
                raise self._not_found(name)
            return self._json(rec, obj)
        if method == "PUT":
            body = await self._body(request)
            obj, created = self._replace_lease(namespace, name, body)
            rec.status = 201 if created else 200
            return web.json_response(obj, status=rec.status)
        if method == "DELETE":
            key = f"{namespace}/{name}"
            old = self._objects[LEASES.key].get(key)
            if old is None:
                raise self._not_found(name)
            self._delete(LEASES.key, name, namespace)
            return self._json(rec, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                    "details": {"name": name, "group": LEASE_GROUP, "kind": LEASES.plural,
                                                "uid": old["metadata"].get("uid")}})
        raise _HTTPError(405, "the server does not allow this method on the requested resource")

    @staticmethod
    def _only(method: str, allowed: str) -> None:
        if method != allowed:
            raise _HTTPError(405, "the server does not allow this method on the requested resource")

    @staticmethod
    def _lease_resource_list() -> dict[str, Any]:
        return {
            "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": LEASES.api_version,
            "resources": [{"name": LEASES.plural, "singularName": LEASES.singular, "namespaced": True,
                           "kind": LEASES.kind, "verbs": ["create", "delete", "deletecollection", "get", "list",
                                                          "patch", "update", "watch"]}],
        }

    @staticmethod
    def _not_found(name: str) -> _HTTPError:
        return _HTTPError(404, f'{_QUALIFIED} "{name}" not found', "NotFound")

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        try:
            body = json.loads(raw or b"null")
        except ValueError as exc:
            raise _HTTPError(400, f"the request body is not valid JSON: {exc}", "BadRequest") from None
        if not isinstance(body, dict):
            raise _HTTPError(400, "the request body must be a JSON object", "BadRequest")
        return body

    # ------------------------------------------------------------ validation

    def _prepare(self, namespace: str, body: dict[str, Any], url_name: str | None) -> dict[str, Any]:
        """Decode and validate a request body; returns the object to store
        (without server-owned fields)."""
        obj = copy.deepcopy(body)
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        if kind not in (None, "", LEASES.kind) or api_version not in (None, "", LEASES.api_version):
            raise _HTTPError(400, f"the API version in the data ({api_version}) / kind ({kind}) does not match "
                             f"the expected {LEASES.api_version} Lease", "BadRequest")
        md = obj.get("metadata")
        if md is None:
            md = obj["metadata"] = {}
        if not isinstance(md, dict):
            raise _HTTPError(400, "metadata must be an object", "BadRequest")
        body_ns = md.get("namespace")
        if body_ns not in (None, "") and body_ns != namespace:
            raise _HTTPError(400, "the namespace of the provided object does not match the namespace sent on "
                             "the request", "BadRequest")
        md["namespace"] = namespace
        if url_name is not None:
            if md.get("name") not in (None, "") and md["name"] != url_name:
                raise _HTTPError(400, f"the name of the object ({md['name']}) does not match the name on the URL "
                                 f"({url_name})", "BadRequest")
            md["name"] = url_name
        elif not md.get("name") and md.get("generateName"):
            md["name"] = md["generateName"] + uuid.uuid4().hex[:5]
        name = md.get("name") or ""
        errors: list[str] = []
        if not name:
            errors.append("metadata.name: Required value: name or generateName is required")
        elif len(name) > 253 or not _DNS_SUBDOMAIN_RE.match(name):
            errors.append(f"metadata.name: Invalid value: {json.dumps(name)}: a lowercase RFC 1123 subdomain must "
                          "consist of lower case alphanumeric characters, '-' or '.'")
        spec = obj.get("spec")
        if spec is None:
            spec = obj["spec"] = {}
        if not isinstance(spec, dict):
            raise _HTTPError(400, "spec must be an object", "BadRequest")
        for field in ("acquireTime", "renewTime"):
            if spec.get(field) is not None:
                spec[field] = _parse_microtime(spec[field])
        for field in ("leaseDurationSeconds", "leaseTransitions"):
            v = spec.get(field)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
                raise _HTTPError(400, f"spec.{field}: expected an integer, got {json.dumps(v)}", "BadRequest")
        if spec.get("holderIdentity") is not None and not isinstance(spec["holderIdentity"], str):
            raise _HTTPError(400, "spec.holderIdentity: expected a string", "BadRequest")
        dur = spec.get("leaseDurationSeconds")
        if dur is not None and dur <= 0:
            errors.append(f"spec.leaseDurationSeconds: Invalid value: {dur}: must be greater than 0")
        trans = spec.get("leaseTransitions")
        if trans is not None and trans < 0:
            errors.append(f"spec.leaseTransitions: Invalid value: {trans}: must be greater than or equal to 0")
        if errors:
            raise _HTTPError(422, f'Lease.{LEASE_GROUP} "{name}" is invalid: ' + ", ".join(errors), "Invalid")
        for server_owned in ("uid", "creationTimestamp", "selfLink", "generation", "managedFields"):
            md.pop(server_owned, None)
        return obj

    # ------------------------------------------------------------ writes

    def _create_lease(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        obj = self._prepare(namespace, body, None)
        md = obj["metadata"]
        if md.get("resourceVersion"):
            raise _HTTPError(500, "resourceVersion should not be set on objects to be created", "InternalError")
        md.pop("resourceVersion", None)
        if f"{namespace}/{md['name']}" in self._objects[LEASES.key]:
            raise _HTTPError(409, f'{_QUALIFIED} "{md["name"]}" already exists', "AlreadyExists")
        return self._create(LEASES.key, obj)

    def _replace_lease(self, namespace: str, name: str, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        obj = self._prepare(namespace, body, name)
        md = obj["metadata"]
        rv = str(md.pop("resourceVersion", "") or "")
        if rv:
            try:
                int(rv)
            except ValueError:
                raise _HTTPError(400, f"invalid resource version: {rv!r}", "BadRequest") from None
        current = self._objects[LEASES.key].get(f"{namespace}/{name}")
        if current is None:
            if rv:
                raise self._not_found(name)
            return self._create(LEASES.key, obj), True
        if not rv:
            raise _HTTPError(422, f'Lease.{LEASE_GROUP} "{name}" is invalid: metadata.resourceVersion: Invalid '
                             'value: 0x0: must be specified for an update', "Invalid")
        if rv != current["metadata"]["resourceVersion"]:
            raise _HTTPError(409, f'Operation cannot be fulfilled on {_QUALIFIED} "{name}": {_OPTIMISTIC_LOCK}',
                             "Conflict")
        # a no-op update keeps the revision, as the real server does
        cur_cmp = copy.deepcopy(current)
        for k in ("uid", "creationTimestamp", "resourceVersion"):
            cur_cmp["metadata"].pop(k, None)
        new_cmp = copy.deepcopy(obj)
        new_cmp["kind"], new_cmp["apiVersion"] = LEASES.kind, LEASES.api_version
        if new_cmp == cur_cmp:
            return copy.deepcopy(current), False
        return self._update(LEASES.key, obj), False


@contextmanager
def run_fake_kube_api_with_leases(**kwargs: Any) -> Iterator[FakeKubeAPIWithLeases]:
    """``with run_fake_kube_api_with_leases() as api: ...`` — start, yield, stop."""
    api = FakeKubeAPIWithLeases(**kwargs).start()
    try:
        yield api
    finally:
        api.stop()

