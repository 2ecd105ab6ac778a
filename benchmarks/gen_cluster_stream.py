"""Generate a synthetic recorded stream of a large HAMi cluster (benchmark input).

Writes the collector's JSON-lines replay format (one
``{"kind", "type", "received", "object"}`` record per line, see
``scheduler_events/sources/replay.py``), deterministically from ``--seed``:

1. ``--nodes`` Node ``SYNC`` records (default 5,000), ``--gpus-per-node``
   GPUs each (default 8), in five GPU-type pools (H100, A100, L40S, A10,
   T4; label ``nvidia.com/gpu.product``).  Each node carries a HAMi register
   annotation ``hami.io/node-nvidia-register``, half in the 9-field colon form
   (``id,count,devmem,devcore,type,numa,health,index,mode:``, HAMi
   v2.5-v2.7) and half in the JSON form (v2.8+), with random GPU UUIDs, a few
   unhealthy devices (``false`` / a JSON entry without ``health``), and a
   ``hami.io/node-handshake`` value (``Reported <Go time.String()>`` or
   ``Requesting_<time.DateTime>``).
2. ``--pods`` pods (default 100,000) arriving at ``--rate`` pods/s, each with
   a lifecycle whose records are merged by time (``received`` never
   decreases across the file):

   * ``Pod ADDED``: pending, ``schedulerName: hami-scheduler``, one container
     limiting ``nvidia.com/gpu`` (1, 2, 4 or 8), ``nvidia.com/gpumem`` (MiB)
     and usually ``nvidia.com/gpucores``; 85 % select a GPU-type pool with a
     ``nodeSelector``; owner ReplicaSet, StatefulSet or Job.
   * for ``--fail-share`` of the pods (default 20 %), 1-6 failed attempts.
     Each attempt: HAMi ``FilteringFailed`` events (core/v1, ``source.component
     hami-scheduler``) -- the summary ``no available node, <n> nodes do not
     meet`` and one ``<k> nodes <Code>(<node>,...)`` per reason code, naming
     every rejected node --, then kube-scheduler's ``FailedScheduling``
     (``reportingComponent`` ``hami-scheduler``) in the count-led grammar with
     HAMi's per-node reason strings and a ``preemption:`` part, e.g.
     ``0/5000 nodes are available: 1183 node(s) didn't match Pod's node
     affinity/selector, 322 8/8 CardInsufficientMemory, 95 Insufficient
     nvidia.com/gpu. preemption: 0/5000 nodes are available: ...``; the first
     attempt also updates the pod's ``PodScheduled`` condition (MODIFIED).
     A repeated identical message is the same Event with ``count`` + 1
     (MODIFIED), as client-go's event correlator does; a changed one is a new
     Event (ADDED).
   * ``--pending-delete-share`` of the pods (default 5 %, taken from the
     failing ones) are then DELETED while still pending.
   * every other pod is placed: ``MODIFIED`` with HAMi's Filter annotations
     (``hami.io/vgpu-node``, ``hami.io/vgpu-time``,
     ``hami.io/vgpu-devices-to-allocate`` and ``-allocated``), a
     ``FilteringSucceed`` event listing the fitting nodes with scores, a
     ``MODIFIED`` with ``hami.io/bind-time`` and ``hami.io/bind-phase:
     allocating``, ``BindingSucceed`` and ``Scheduled`` events, a ``MODIFIED``
     with ``spec.nodeName`` and ``PodScheduled=True``, a ``MODIFIED`` with
     ``bind-phase: success`` (device plugin Allocate) and a ``MODIFIED`` with
     the container running.
   * ``--complete-share`` of the pods (default 30 %) later finish: a
     ``MODIFIED`` with ``phase: Succeeded`` and then ``DELETED``.

How many nodes HAMi sees follows kube-scheduler: the extender is called with
the nodes that passed kube-scheduler's own filters, and kube-scheduler stops
filtering once it has ``numFeasibleNodesToFind`` feasible nodes (adaptive
``percentageOfNodesToScore``: 500 of 5,000 nodes).  ``--feasible-cap``
overrides that number (0 = no cap).  So a ``FilteringSucceed`` or a
per-reason ``FilteringFailed`` names up to that many nodes.

The events come in the core/v1 shape only; ``--event-apis both`` adds the
events.k8s.io/v1 shape of every Event (``EventV1``, same uid), which is what a
collector following both Event APIs receives.

Output: ``--out FILE`` (default: a new file in the system temp directory,
never the repository); ``-`` writes to stdout.  A summary JSON object goes to
stderr.  At full size the file is about 1.3 GB; use ``--pods 10000`` for a
quick run.

Run: ``python benchmarks/gen_cluster_stream.py [--nodes 5000] [--pods 100000]
[--out FILE] [--seed 1]``.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import random
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone

#: 2026-11-20T00:00:00Z (the demo dump's day)
T0 = 1795132800.0

#: (pool, HAMi type string, registered MiB, nvidia.com/gpu.product label, share of nodes)
GPU_POOLS = (
    ("h100", "NVIDIA-NVIDIA H100 80GB HBM3", 81559, "NVIDIA-H100-80GB-HBM3", 0.30),
    ("a100", "NVIDIA-NVIDIA A100-SXM4-80GB", 81920, "NVIDIA-A100-SXM4-80GB", 0.30),
    ("l40s", "NVIDIA-NVIDIA L40S", 46068, "NVIDIA-L40S", 0.20),
    ("a10", "NVIDIA-NVIDIA A10", 23028, "NVIDIA-A10", 0.12),
    ("t4", "NVIDIA-Tesla T4", 15360, "Tesla-T4", 0.08),
)
SPLIT_COUNT = 10  # HAMi deviceSplitCount

_COMPACT = (",", ":")


def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(int(t), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_micro(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def go_time_string(t: float, uptime: float) -> str:
    """Go ``time.Time.String()`` with a monotonic reading, as HAMi writes it."""
    dt = datetime.fromtimestamp(t, timezone.utc)
    nanos = int(round((t - int(t)) * 1e9))
    return f"{dt:%Y-%m-%d %H:%M:%S}.{nanos:09d} +0000 UTC m=+{uptime:.9f}"


def feasible_cap(nodes: int) -> int:
    """kube-scheduler ``numFeasibleNodesToFind`` with the adaptive percentage."""
    if nodes < 100:
        return nodes
    pct = max(5, 50 - nodes // 125)
    return max(100, nodes * pct // 100)


class Gen:
    def __init__(self, args: argparse.Namespace) -> None:
        self.a = args
        self.rng = random.Random(args.seed)
        self.heap: list[tuple[float, int, str]] = []
        self.seq = 0
        self.counts: dict[str, int] = {}
        self.cap = feasible_cap(args.nodes) if args.feasible_cap is None else (args.feasible_cap or args.nodes)
        self.nodes: list[str] = []
        self.node_gpus: dict[str, list[str]] = {}
        self.pools: dict[str, list[str]] = {}
        self.node_pool: dict[str, int] = {}
        self.namespaces = [f"team-{w}" for w in (
            "search", "ranking", "ads", "speech", "vision", "llm", "recsys", "nlp", "ocr", "fraud",
            "maps", "video", "safety", "infra", "research", "forecast", "music", "translate", "chat", "eval")]
        self.namespaces += ["ml", "research", "batch", "inference", "training"]
        self.workloads = [self._workload(i) for i in range(max(50, args.pods // 40))]

    # ------------------------------------------------------------- helpers
    def uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def gpu_uuid(self) -> str:
        return "GPU-" + str(uuid.UUID(int=self.rng.getrandbits(128)))

    def rv(self, t: float) -> str:
        self.seq += 1
        return str(int(t * 1000) * 100 + self.seq % 100)

    def push(self, t: float, kind: str, typ: str, obj: dict) -> None:
        line = json.dumps({"kind": kind, "type": typ, "received": round(t, 6), "object": obj},
                          separators=_COMPACT)
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, line))
        key = f"{kind}/{typ}"
        self.counts[key] = self.counts.get(key, 0) + 1
        if self.a.event_apis == "both" and kind == "Event":
            self.push(t + 1e-6, "EventV1", typ, self._as_v1(obj))

    @staticmethod
    def _as_v1(ev: dict) -> dict:
        """The events.k8s.io/v1 view of a core/v1 Event."""
        out = {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": ev["metadata"],
               "regarding": ev["involvedObject"], "reason": ev["reason"], "note": ev["message"],
               "type": ev["type"], "deprecatedSource": ev["source"],
               "deprecatedFirstTimestamp": ev["firstTimestamp"], "deprecatedLastTimestamp": ev["lastTimestamp"],
               "deprecatedCount": ev["count"], "eventTime": None,
               "reportingController": ev.get("reportingComponent") or "",
               "reportingInstance": ev.get("reportingInstance") or ""}
        return out

    def flush_until(self, t: float, out) -> None:
        heap = self.heap
        while heap and heap[0][0] <= t:
            out.write(heapq.heappop(heap)[2])
            out.write("\n")

    # ------------------------------------------------------------- nodes
    def write_nodes(self, out) -> None:
        a, rng = self.a, self.rng
        shares = [p[4] for p in GPU_POOLS]
        bounds, acc = [], 0.0
        for s in shares:
            acc += s
            bounds.append(acc * a.nodes / sum(shares))
        pi = 0
        for i in range(a.nodes):
            while i >= bounds[pi] and pi < len(GPU_POOLS) - 1:
                pi += 1
            pool, gtype, mem, product, _ = GPU_POOLS[pi]
            name = f"gpu-{pool}-{i:05d}"
            self.nodes.append(name)
            self.pools.setdefault(pool, []).append(name)
            self.node_pool[name] = pi
            gpus = [self.gpu_uuid() for _ in range(a.gpus_per_node)]
            self.node_gpus[name] = gpus
            health = [rng.random() >= 0.002 for _ in gpus]
            if i % 2 == 0:  # JSON form (HAMi >= v2.8); a missing "health" means unhealthy
                entries = []
                for gi, g in enumerate(gpus):
                    e = {"id": g, "index": gi, "count": SPLIT_COUNT, "devmem": mem, "devcore": 100, "type": gtype,
                         "numa": gi * 2 // a.gpus_per_node, "mode": "hami-core"}
                    if health[gi]:
                        e["health"] = True
                    entries.append(e)
                register = json.dumps(entries, separators=_COMPACT)
            else:  # 9-field colon form (v2.5-v2.7): id,count,devmem,devcore,type,numa,health,index,mode:
                register = "".join(
                    f"{g},{SPLIT_COUNT},{mem},100,{gtype},{gi * 2 // a.gpus_per_node},"
                    f"{'true' if health[gi] else 'false'},{gi},hami-core:" for gi, g in enumerate(gpus))
            hs_t = T0 - rng.uniform(5, 60)
            if rng.random() < 0.97:
                handshake = "Reported " + go_time_string(hs_t, rng.uniform(600, 900000))
            else:
                when = datetime.fromtimestamp(int(hs_t), timezone.utc)
                handshake = f"Requesting_{when:%Y-%m-%d %H:%M:%S}"
            created = T0 - rng.uniform(86400, 86400 * 200)
            zone = f"zone-{'abc'[i % 3]}"
            node = {
                "apiVersion": "v1", "kind": "Node",
                "metadata": {
                    "name": name, "uid": self.uid(), "resourceVersion": str(1000 + i),
                    "creationTimestamp": rfc3339(created),
                    "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                               "kubernetes.io/arch": "amd64", "node.kubernetes.io/instance-type": f"gpu-{pool}-8x",
                               "topology.kubernetes.io/zone": zone, "nvidia.com/gpu.product": product,
                               "nvidia.com/gpu.count": str(a.gpus_per_node), "gpu": "on"},
                    "annotations": {"hami.io/node-nvidia-register": register,
                                    "hami.io/node-handshake": handshake,
                                    "node.alpha.kubernetes.io/ttl": "0",
                                    "volumes.kubernetes.io/controller-managed-attach-detach": "true"},
                },
                "spec": {"podCIDR": f"10.{i // 256 % 256}.{i % 256}.0/24",
                         "providerID": f"bench://{zone}/{name}"},
                "status": {
                    "capacity": {"cpu": "128", "memory": "2113612Mi", "pods": "110", "ephemeral-storage": "3750Gi",
                                 "nvidia.com/gpu": str(a.gpus_per_node * SPLIT_COUNT)},
                    "allocatable": {"cpu": "126", "memory": "2063731Mi", "pods": "110",
                                    "ephemeral-storage": "3450Gi",
                                    "nvidia.com/gpu": str(a.gpus_per_node * SPLIT_COUNT)},
                    "conditions": [
                        {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory",
                         "lastHeartbeatTime": rfc3339(T0 - 10), "lastTransitionTime": rfc3339(created + 300)},
                        {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure",
                         "lastHeartbeatTime": rfc3339(T0 - 10), "lastTransitionTime": rfc3339(created + 300)},
                        {"type": "Ready", "status": "True", "reason": "KubeletReady",
                         "message": "kubelet is posting ready status",
                         "lastHeartbeatTime": rfc3339(T0 - 10), "lastTransitionTime": rfc3339(created + 300)},
                    ],
                    "nodeInfo": {"kubeletVersion": "v1.31.4", "containerRuntimeVersion": "containerd://1.7.24",
                                 "kernelVersion": "5.15.0-126-generic", "osImage": "Ubuntu 22.04.5 LTS"},
                },
            }
            line = json.dumps({"kind": "Node", "type": "SYNC", "received": round(T0 + i * 1e-4, 6), "object": node},
                              separators=_COMPACT)
            out.write(line)
            out.write("\n")
            self.counts["Node/SYNC"] = self.counts.get("Node/SYNC", 0) + 1

    # ------------------------------------------------------------- pods
    def _workload(self, i: int) -> tuple[str, str, str, str]:
        rng = self.rng
        ns = rng.choice(self.namespaces)
        kind = rng.choices(("ReplicaSet", "StatefulSet", "Job"), (0.5, 0.2, 0.3))[0]
        base = rng.choice(("ranker", "embed", "asr", "tts", "llm-serve", "train", "finetune", "detector",
                           "encoder", "retriever", "reranker", "vision", "ocr", "eval", "distill"))
        name = f"{base}-{i:04d}"
        if kind == "ReplicaSet":
            name = f"{name}-{rng.getrandbits(40):010x}"[:len(name) + 11]
        return ns, kind, name, self.uid()

    def _pod_name(self, wl: tuple[str, str, str, str], n: int) -> str:
        _, kind, name, _ = wl
        if kind == "StatefulSet":
            return f"{name}-{n}"
        suffix = "".join(self.rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
        return f"{name}-{suffix}"

    def _request(self, pool_i: int) -> tuple[int, int, int | None]:
        rng = self.rng
        mem_cap = GPU_POOLS[pool_i][2]
        count = rng.choices((1, 2, 4, 8), (0.70, 0.12, 0.10, 0.08))[0]
        mem = rng.choice([m for m in (2048, 4096, 8192, 10240, 16384, 20480, 24576, 40960, 65536) if m <= mem_cap])
        cores = rng.choice((None, 10, 20, 25, 30, 50, 60, 100))
        if count == 8:
            mem, cores = mem_cap, 100
        return count, mem, cores

    def write_pods(self, out) -> None:
        a, rng = self.a, self.rng
        t = T0 + 1.0
        fail_n = int(round(a.pods * a.fail_share))
        pdel_n = int(round(a.pods * a.pending_delete_share))
        done_n = int(round(a.pods * a.complete_share))
        order = list(range(a.pods))
        rng.shuffle(order)
        fail = set(order[:fail_n])
        pdel = set(order[:min(pdel_n, fail_n)])
        placed_idx = [i for i in order if i not in pdel]
        done = set(placed_idx[-done_n:]) if done_n else set()
        seen_names: set[tuple[str, str]] = set()
        sts_next: dict[str, int] = {}
        for i in range(a.pods):
            t += rng.expovariate(a.rate)
            self.flush_until(t, out)
            wl = rng.choice(self.workloads)
            ns, okind, oname, ouid = wl
            if okind == "StatefulSet":
                n = sts_next.get(oname, 0)
                sts_next[oname] = n + 1
                pname = self._pod_name(wl, n)
            else:
                pname = self._pod_name(wl, 0)
                while (ns, pname) in seen_names:
                    pname = self._pod_name(wl, 0)
            seen_names.add((ns, pname))
            self._pod_lifecycle(t, ns, pname, okind, oname, ouid, i in fail, i in pdel, i in done)
        self.flush_until(float("inf"), out)

    def _pod_lifecycle(self, t: float, ns: str, name: str, okind: str, oname: str, ouid: str,
                       fails: bool, pending_delete: bool, completes: bool) -> None:
        a, rng = self.a, self.rng
        uid = self.uid()
        any_pool = rng.random() < 0.15
        pool_i = rng.randrange(len(GPU_POOLS)) if not any_pool else rng.choices(
            range(len(GPU_POOLS)), [p[4] for p in GPU_POOLS])[0]
        if GPU_POOLS[pool_i][0] not in self.pools:  # a tiny cluster: not every pool has nodes
            pool_i = next(i for i, p in enumerate(GPU_POOLS) if p[0] in self.pools)
        count, mem, cores = self._request(pool_i)
        limits = {"cpu": str(rng.choice((4, 8, 16, 32))), "memory": f"{rng.choice((16, 32, 64, 128))}Gi",
                  "nvidia.com/gpu": str(count), "nvidia.com/gpumem": str(mem)}
        if cores is not None:
            limits["nvidia.com/gpucores"] = str(cores)
        requests = {"cpu": str(int(limits["cpu"]) // 2), "memory": limits["memory"]}
        labels = {"app": oname.rsplit("-", 1)[0] if okind == "ReplicaSet" else oname}
        if okind == "ReplicaSet":
            labels["pod-template-hash"] = oname.rsplit("-", 1)[-1]
        elif okind == "Job":
            labels["batch.kubernetes.io/job-name"] = oname
        else:
            labels["apps.kubernetes.io/pod-index"] = name.rsplit("-", 1)[-1]
        ann: dict[str, str] = {}
        r = rng.random()
        if r < 0.25:
            ann["hami.io/gpu-scheduler-policy"] = rng.choice(("binpack", "spread"))
        if r < 0.10:
            ann["hami.io/node-scheduler-policy"] = "spread"
        spec = {
            "schedulerName": "hami-scheduler",
            "containers": [{
                "name": "main", "image": f"registry.example.invalid/{ns}/{labels['app']}:v{rng.randint(1, 40)}",
                "resources": {"limits": limits, "requests": requests},
                "env": [{"name": "NVIDIA_VISIBLE_DEVICES", "value": "none"}],
            }],
            "restartPolicy": "Never" if okind == "Job" else "Always",
            "serviceAccountName": "default",
            "terminationGracePeriodSeconds": 30,
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "priority": 0,
        }
        if not any_pool:
            spec["nodeSelector"] = {"nvidia.com/gpu.product": GPU_POOLS[pool_i][3]}
        created = t
        pod = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": name, "namespace": ns, "uid": uid, "resourceVersion": self.rv(t),
                "creationTimestamp": rfc3339(created), "labels": labels, "annotations": ann,
                "ownerReferences": [{"apiVersion": "batch/v1" if okind == "Job" else "apps/v1", "kind": okind,
                                     "name": oname, "uid": ouid, "controller": True, "blockOwnerDeletion": True}],
            },
            "spec": spec,
            "status": {"phase": "Pending", "qosClass": "Burstable"},
        }
        self.push(t, "Pod", "ADDED", pod)

        pool_nodes = self.nodes if any_pool else self.pools[GPU_POOLS[pool_i][0]]
        # ---------------------------------------------------------- failed attempts
        t_try = t + rng.uniform(0.005, 0.2)
        if fails:
            attempts = min(6, 1 + int(rng.expovariate(0.7)))
            events: dict[tuple[str, str], dict] = {}  # (reason, message) -> Event (correlator key)
            fs = self._failure(pod, pool_nodes, any_pool, count, mem, cores)
            for k in range(attempts):
                if k and rng.random() < 0.3:
                    fs = self._failure(pod, pool_nodes, any_pool, count, mem, cores)
                for reason, msg in fs["hami"]:
                    self._event(events, t_try, pod, reason, msg, "Warning", component="hami-scheduler")
                t_fs = t_try + rng.uniform(0.001, 0.02)
                self._event(events, t_fs, pod, "FailedScheduling", fs["message"], "Warning",
                            component="hami-scheduler", reporting=True)
                if k == 0 or fs["changed"]:
                    pod["metadata"]["resourceVersion"] = self.rv(t_fs)
                    pod["status"] = {"phase": "Pending", "qosClass": "Burstable", "conditions": [{
                        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                        "message": fs["message"], "lastProbeTime": None, "lastTransitionTime": rfc3339(t_fs)}]}
                    fs["changed"] = False
                    self.push(t_fs + rng.uniform(0.001, 0.01), "Pod", "MODIFIED", pod)
                t_try = t_fs + rng.uniform(1.0, 10.0) * (2 ** min(k, 3)) + (rng.uniform(30, 300) if k >= 3 else 0)
            if pending_delete:
                t_del = t_try + rng.uniform(0, 120)
                pod["metadata"]["resourceVersion"] = self.rv(t_del)
                pod["metadata"]["deletionTimestamp"] = rfc3339(t_del)
                pod["metadata"]["deletionGracePeriodSeconds"] = 0
                self.push(t_del, "Pod", "DELETED", pod)
                return
        # ---------------------------------------------------------- placement
        node, devs = self._place(pool_nodes, count, mem, cores)
        t_f = t_try
        cand = self._candidates(len(pool_nodes), any_pool)
        fit_n = max(1, min(cand, int(round(cand * 0.5 * rng.random() ** 3))))  # a busy cluster: few nodes fit
        others = [n for n in rng.sample(pool_nodes, min(len(pool_nodes), fit_n + 1)) if n != node]
        fit_nodes = [node] + others[:fit_n - 1]
        scores = sorted((round(rng.uniform(0.05, 0.97), 2) for _ in fit_nodes[1:]), reverse=True)
        top = round(min(1.0, (scores[0] if scores else 0.5) + rng.uniform(0.0, 0.03)), 2)
        fit_text = ",".join(f"{n}:{s:.2f}" for n, s in zip(fit_nodes, [top] + scores))
        alloc = "".join(f"{g},NVIDIA,{mem},{cores or 0}:" for g in devs) + ";"
        meta = pod["metadata"]
        meta["annotations"] = dict(meta["annotations"], **{
            "hami.io/vgpu-node": node, "hami.io/vgpu-time": str(int(t_f)),
            "hami.io/vgpu-devices-to-allocate": alloc, "hami.io/vgpu-devices-allocated": alloc})
        meta["resourceVersion"] = self.rv(t_f)
        self.push(t_f, "Pod", "MODIFIED", pod)
        events = {}
        self._event(events, t_f + 0.001, pod, "FilteringSucceed",
                    f"find fit node({node}), {cand - fit_n} nodes not fit, {fit_n} nodes fit({fit_text})",
                    "Normal", component="hami-scheduler")
        t_b = t_f + rng.uniform(0.005, 0.08)
        meta["annotations"] = dict(meta["annotations"], **{
            "hami.io/bind-time": str(int(t_b)), "hami.io/bind-phase": "allocating"})
        meta["resourceVersion"] = self.rv(t_b)
        self.push(t_b, "Pod", "MODIFIED", pod)
        self._event(events, t_b + 0.002, pod, "BindingSucceed",
                    f"Successfully binding node [{node}] to {ns}/{name}", "Normal", component="hami-scheduler")
        t_s = t_b + rng.uniform(0.005, 0.05)
        self._event(events, t_s, pod, "Scheduled", f"Successfully assigned {ns}/{name} to {node}", "Normal",
                    component="hami-scheduler", reporting=True)
        spec["nodeName"] = node
        meta["resourceVersion"] = self.rv(t_s)
        pod["status"] = {"phase": "Pending", "qosClass": "Burstable",
                         "conditions": [{"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                                         "lastTransitionTime": rfc3339(t_s)}]}
        self.push(t_s + 0.001, "Pod", "MODIFIED", pod)
        t_a = t_s + rng.uniform(0.3, 4.0)
        meta["annotations"] = dict(meta["annotations"], **{
            "hami.io/bind-phase": "success", "hami.io/vgpu-devices-to-allocate": ";"})
        meta["resourceVersion"] = self.rv(t_a)
        pod["status"] = {"phase": "Pending", "qosClass": "Burstable", "hostIP": "10.0.0.1",
                         "conditions": pod["status"]["conditions"] + [
                             {"type": "Initialized", "status": "True", "lastProbeTime": None,
                              "lastTransitionTime": rfc3339(t_a)}],
                         "containerStatuses": [{"name": "main", "ready": False, "restartCount": 0,
                                                "image": spec["containers"][0]["image"], "imageID": "",
                                                "started": False,
                                                "state": {"waiting": {"reason": "ContainerCreating"}}}]}
        self.push(t_a, "Pod", "MODIFIED", pod)
        t_r = t_a + rng.uniform(1.0, 60.0)
        pod["status"] = {
            "phase": "Running", "qosClass": "Burstable", "hostIP": "10.0.0.1",
            "podIP": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
            "startTime": rfc3339(t_a),
            "conditions": [{"type": c, "status": "True", "lastProbeTime": None,
                            "lastTransitionTime": rfc3339(t_s if c == "PodScheduled" else t_r)}
                           for c in ("PodScheduled", "Initialized", "ContainersReady", "Ready")],
            "containerStatuses": [{"name": "main", "ready": True, "restartCount": 0, "started": True,
                                   "image": spec["containers"][0]["image"],
                                   "imageID": f"registry.example.invalid/sha256:{rng.getrandbits(256):064x}",
                                   "containerID": f"containerd://{rng.getrandbits(256):064x}",
                                   "state": {"running": {"startedAt": rfc3339(t_r)}}}],
        }
        meta["resourceVersion"] = self.rv(t_r)
        self.push(t_r, "Pod", "MODIFIED", pod)
        if completes:
            t_done = t_r + rng.uniform(60, 3600)
            cs = pod["status"]["containerStatuses"][0]
            cs["state"] = {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": rfc3339(t_r),
                                          "finishedAt": rfc3339(t_done), "containerID": cs["containerID"]}}
            cs["ready"], cs["started"] = False, False
            pod["status"]["phase"] = "Succeeded"
            meta["resourceVersion"] = self.rv(t_done)
            self.push(t_done, "Pod", "MODIFIED", pod)
            t_gone = t_done + rng.uniform(1, 30)
            meta["resourceVersion"] = self.rv(t_gone)
            meta["deletionTimestamp"] = rfc3339(t_gone)
            meta["deletionGracePeriodSeconds"] = 0
            self.push(t_gone, "Pod", "DELETED", pod)

    def _candidates(self, pool_size: int, any_pool: bool) -> int:
        """Nodes the extender is called with (kube-feasible, capped)."""
        feasible = int(pool_size * self.rng.uniform(0.4, 0.95))
        return max(1, min(self.cap, feasible))

    def _place(self, pool_nodes: list[str], count: int, mem: int, cores: int | None) -> tuple[str, list[str]]:
        node = self.rng.choice(pool_nodes)
        gpus = self.node_gpus[node]
        return node, self.rng.sample(gpus, min(count, len(gpus)))

    def _failure(self, pod: dict, pool_nodes: list[str], any_pool: bool, count: int, mem: int,
                 cores: int | None) -> dict:
        """One failed attempt: kube-scheduler's message and HAMi's FilteringFailed events."""
        rng, n_all, gpn = self.rng, self.a.nodes, self.a.gpus_per_node
        pool_size = len(pool_nodes)
        other = n_all - pool_size  # rejected by the nodeSelector
        insufficient = int(pool_size * rng.uniform(0.0, 0.5))  # nvidia.com/gpu exhausted (kube filter)
        feasible = pool_size - insufficient
        cand = max(1, min(self.cap, feasible))
        scale = min(1.0, cand / feasible) if feasible else 1.0  # the scan stops at numFeasibleNodesToFind
        seen_other = int(round(other * scale))
        seen_insufficient = int(round(insufficient * scale))
        names = sorted(rng.sample(pool_nodes, cand))
        # HAMi per-node reasons (GenReason: "<cnt>/<cards> <Code>" entries sorted as strings)
        patterns: list[tuple[tuple[str, int], ...]] = [((("CardInsufficientMemory", gpn),))]
        if cores:
            patterns.append((("CardInsufficientCore", gpn),))
            k = rng.randint(1, gpn - 1)
            patterns.append((("CardInsufficientCore", k), ("CardInsufficientMemory", gpn - k)))
        patterns.append((("CardTimeSlicingExhausted", gpn),))
        if count > 1:
            k = rng.randint(1, min(count, gpn) - 1) if min(count, gpn) > 1 else 1
            patterns.append((("AllocatedCardsInsufficientRequest", k), ("CardInsufficientMemory", gpn - k)))
        patterns.append((("CardNotHealth", 1), ("CardInsufficientMemory", gpn - 1)))
        weights = [rng.random() ** 2 for _ in patterns]
        weights[0] += 1.0
        per_node = rng.choices(range(len(patterns)), weights, k=cand)
        hist: dict[str, int] = {}
        by_code: dict[str, list[str]] = {}
        for node, pi in zip(names, per_node):
            entries = sorted(f"{c}/{gpn} {code}" for code, c in patterns[pi])
            reason = ", ".join(entries)
            hist[reason] = hist.get(reason, 0) + 1
            for code, _ in patterns[pi]:
                by_code.setdefault(code, []).append(node)
        if seen_other:
            hist["node(s) didn't match Pod's node affinity/selector"] = seen_other
        if seen_insufficient:
            hist["Insufficient nvidia.com/gpu"] = seen_insufficient
        histogram = ", ".join(sorted(f"{c} {r}" for r, c in hist.items()))
        pre = {}
        if seen_other:
            pre["Preemption is not helpful for scheduling"] = seen_other
        rest = cand + seen_insufficient
        if rest:
            pre["No preemption victims found for incoming pod"] = rest
        preemption = ", ".join(sorted(f"{c} {r}" for r, c in pre.items()))
        message = (f"0/{n_all} nodes are available: {histogram}. "
                   f"preemption: 0/{n_all} nodes are available: {preemption}.")
        hami = [("FilteringFailed", f"no available node, {cand} nodes do not meet")]
        for code in sorted(by_code):
            ns = by_code[code]
            hami.append(("FilteringFailed", f"{len(ns)} nodes {code}({','.join(ns)})"))
        return {"message": message, "hami": hami, "changed": True}

    def _event(self, events: dict, t: float, pod: dict, reason: str, message: str, typ: str, *,
               component: str, reporting: bool = False) -> None:
        """A core/v1 Event on ``pod``; the same (reason, message) again bumps ``count`` (MODIFIED)."""
        meta = pod["metadata"]
        key = (reason, message)
        ev = events.get(key)
        if ev is None:
            ev = {
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"name": f"{meta['name']}.{self.rng.getrandbits(64):016x}", "namespace": meta["namespace"],
                             "uid": self.uid(), "resourceVersion": self.rv(t), "creationTimestamp": rfc3339(t)},
                "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"],
                                   "namespace": meta["namespace"], "uid": meta["uid"],
                                   "resourceVersion": meta["resourceVersion"]},
                "reason": reason, "message": message, "type": typ, "source": {"component": component},
                "firstTimestamp": rfc3339(t), "lastTimestamp": rfc3339(t), "count": 1,
                "reportingComponent": component if reporting else "",
                "reportingInstance": f"{component}-5d8f7c9b4-x2k8q" if reporting else "",
            }
            events[key] = ev
            self.push(t, "Event", "ADDED", ev)
            return
        ev = dict(ev, metadata=dict(ev["metadata"], resourceVersion=self.rv(t)), lastTimestamp=rfc3339(t),
                  count=ev["count"] + 1)
        events[key] = ev
        self.push(t, "Event", "MODIFIED", ev)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nodes", type=int, default=5000, help="nodes (default 5000)")
    p.add_argument("--gpus-per-node", type=int, default=8, help="GPUs per node (default 8)")
    p.add_argument("--pods", type=int, default=100_000, help="pods (default 100000)")
    p.add_argument("--rate", type=float, default=100.0, help="pod arrivals per second of stream time (default 100)")
    p.add_argument("--fail-share", type=float, default=0.20, help="pods with failed attempts (default 0.20)")
    p.add_argument("--pending-delete-share", type=float, default=0.05,
                   help="pods deleted while pending, taken from the failing ones (default 0.05)")
    p.add_argument("--complete-share", type=float, default=0.30, help="pods that finish and are deleted (default 0.30)")
    p.add_argument("--feasible-cap", type=int, default=None,
                   help="nodes the HAMi extender is called with at most (default: kube-scheduler's "
                   "numFeasibleNodesToFind, 500 for 5000 nodes; 0 = all feasible nodes)")
    p.add_argument("--event-apis", choices=("core", "both"), default="core",
                   help="core: Events as core/v1 only; both: also the events.k8s.io/v1 shape of each (default core)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--out", help="output file ('-' = stdout; default: a new file in the temp directory)")
    args = p.parse_args(argv)
    if args.nodes < 1 or args.pods < 0 or args.gpus_per_node < 1:
        p.error("--nodes and --gpus-per-node must be >= 1, --pods >= 0")
    if args.out is None:
        fd, args.out = tempfile.mkstemp(prefix=f"cluster-{args.nodes}n-{args.pods}p-", suffix=".jsonl")
        os.close(fd)
    t0 = time.perf_counter()
    gen = Gen(args)
    out = sys.stdout if args.out == "-" else open(args.out, "w", encoding="utf-8", buffering=1 << 20)  # noqa: SIM115
    try:
        gen.write_nodes(out)
        gen.write_pods(out)
    finally:
        if out is not sys.stdout:
            out.close()
    size = os.path.getsize(args.out) if args.out != "-" else None
    print(json.dumps({"out": args.out, "bytes": size, "records": sum(gen.counts.values()), "by_kind": gen.counts,
                      "feasible_cap": gen.cap, "seconds": round(time.perf_counter() - t0, 1)}),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
