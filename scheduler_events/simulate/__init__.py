"""Trace-driven cluster simulator.

Replays a node list and a pod list in the format of Alibaba's
``cluster-trace-gpu-v2023`` (the FGD paper's "openb" trace) through a
placement policy and measures allocation and FGD fragmentation
(:mod:`scheduler_events.fragmentation`) as the arrived GPU demand grows.

* :mod:`.trace`: the CSV reader (:func:`read_nodes`, :func:`read_pods`,
  :class:`TraceError`).
* :mod:`.policies`: :class:`SimCluster` and the policies ``fgd``, ``bestfit``,
  ``random`` and ``hami`` (:func:`make_policy`).
* :mod:`.experiment`: the paper's experiment (:func:`run`), with optional
  ``on_place(pod, node, gpus)`` / ``on_fail(pod)`` hooks for emitting
  Kubernetes objects and events.
* :mod:`.validate`: ``python -m scheduler_events.simulate.validate``, ours vs
  the paper's expected results.

The trace files are not part of the project: they are read from
``../shared/trace/`` or a path the user gives.
"""

from .experiment import RunResult, pod_sequence, run, typical_workload
from .policies import FGD, HAMi, BestFit, Policy, Random, SimCluster, make_policy
from .trace import NodeList, PodList, TraceError, TracePod, default_trace_dir, read_nodes, read_pods

__all__ = [
    "FGD",
    "BestFit",
    "HAMi",
    "NodeList",
    "PodList",
    "Policy",
    "Random",
    "RunResult",
    "SimCluster",
    "TraceError",
    "TracePod",
    "default_trace_dir",
    "make_policy",
    "pod_sequence",
    "read_nodes",
    "read_pods",
    "run",
    "typical_workload",
]
