"""The scheduler-event collector's metric schema: the single source of truth.

Every family the collector emits (placements, rejections, phase latency,
pending pods, per-device allocation from HAMi annotations, node
registration, and the collector's own health) is declared here once.
``docs/metrics.md`` is generated from it; dashboards and alert rules import
the names.  Label names follow the exporter's where they mean the same thing
(``hw_id`` is the device UUID, ``k8s_node_name``, ``k8s_namespace_name``) so
allocation and usage join 1:1.
"""

from __future__ import annotations

from accelscope.schema import COUNTER, GAUGE, HISTOGRAM, MetricSpec

SCHEDULER = "scheduler"
OUTCOME = "outcome"
REASON = "reason"
SOURCE = "reason_source"
PHASE = "phase"
NODE = "k8s_node_name"
NAMESPACE = "k8s_namespace_name"
HW_ID = "hw_id"
VENDOR = "hw_vendor"
MODEL = "hw_model"
INDEX = "accel_index"

DEVICE = (NODE, HW_ID, VENDOR, MODEL, INDEX)

#: phases measured by accel_placement_phase_duration_seconds
PHASES = ("created_to_filtered", "filtered_to_bound", "bound_to_allocated", "created_to_bound", "created_to_running")
#: buckets: 10 ms .. ~3 h, exponential by 2.5
PHASE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 60.0, 150.0, 300.0, 600.0, 1800.0,
                 3600.0, 10800.0)

ATTEMPTS = MetricSpec(
    "accel_placement_attempts_total", COUNTER, "{attempt}", (SCHEDULER, "result"),
    "Scheduling attempts of accelerator pods seen, by scheduler and result (scheduled, unschedulable).",
    source="FailedScheduling events (counting their series), Scheduled events, spec.nodeName.")
DECISIONS = MetricSpec(
    "accel_placement_decisions_total", COUNTER, "{decision}", (SCHEDULER, OUTCOME),
    "Placement outcomes: placed (bound to a node), failed (device allocation failed after binding; such a pod also counted once as placed), deleted (while still pending).",
    source="decision engine.")
REJECTIONS = MetricSpec(
    "accel_placement_rejections_total", COUNTER, "{node}", (SCHEDULER, REASON, SOURCE),
    "Node rejections in failed scheduling attempts, by bounded reason code (HAMi codes such as "
    "CardInsufficientMemory, kube-scheduler codes such as insufficient_resource; unknown ones as other).",
    source="FailedScheduling histogram, PodScheduled condition, HAMi FilteringFailed events.")
NODE_REJECTIONS = MetricSpec(
    "accel_placement_node_rejections_total", COUNTER, "{rejection}", (SCHEDULER, NODE, REASON),
    "Rejections of named nodes in failed attempts, by node and reason code, where the scheduler names the nodes "
    "(HAMi FilteringFailed events; at most 32 nodes per reason per attempt). One series per node and reason.",
    source="HAMi FilteringFailed <k> nodes <Code>(<node>,...) events.")
PHASE_DURATION = MetricSpec(
    "accel_placement_phase_duration_seconds", HISTOGRAM, "s", (SCHEDULER, PHASE),
    "Time between placement phases, in seconds (created_to_filtered, filtered_to_bound, bound_to_allocated, "
    "created_to_bound, created_to_running); exemplars carry the placement's trace_id.",
    source="creationTimestamp, hami.io/vgpu-time, hami.io/bind-time, bind-phase, Scheduled event, container start.")
PENDING = MetricSpec(
    "accel_pending_pods", GAUGE, "{pod}", (SCHEDULER, NAMESPACE, REASON),
    "Accelerator pods waiting to be placed, by their primary reason (none when no scheduler has reported yet).",
    source="decision engine.")
PENDING_POD = MetricSpec(
    "accel_pending_pod_info", GAUGE, "1", (SCHEDULER, NAMESPACE, "k8s_pod_name", "k8s_pod_uid", REASON, "trace_id"),
    "One series per pending accelerator pod (value 1) with its primary reason and the trace id derived from its "
    "UID, for tables that link to the trace; bounded by the number of pending pods.",
    source="decision engine.")
OLDEST_PENDING = MetricSpec(
    "accel_pending_oldest_seconds", GAUGE, "s", (SCHEDULER, NAMESPACE),
    "Age of the oldest pending accelerator pod, in seconds.", source="creationTimestamp.")
DEVICE_MEMORY_REGISTERED = MetricSpec(
    "accel_device_memory_registered_bytes", GAUGE, "By", DEVICE,
    "Device memory registered with the scheduler, in bytes (HAMi node register annotation; includes "
    "deviceMemoryScaling, so it can exceed the physical size).", source="hami.io/node-*-register.")
DEVICE_MEMORY_ALLOCATED = MetricSpec(
    "accel_device_memory_allocated_bytes", GAUGE, "By", DEVICE,
    "Device memory allocated to pods bound to the node, in bytes (allocation, not usage).",
    source="hami.io/*-devices-allocated of pods on the node.")
DEVICE_CORES_REGISTERED = MetricSpec(
    "accel_device_cores_registered_ratio", GAUGE, "1", DEVICE,
    "Compute registered with the scheduler as a fraction of one device (1 = the whole device).",
    source="hami.io/node-*-register devcore/100.")
DEVICE_CORES_ALLOCATED = MetricSpec(
    "accel_device_cores_allocated_ratio", GAUGE, "1", DEVICE,
    "Compute allocated to pods, as a fraction of one device (sum of gpucores/100; 0 = no core limit asked).",
    source="hami.io/*-devices-allocated.")
DEVICE_SHARED = MetricSpec(
    "accel_device_shared_containers", GAUGE, "{container}", DEVICE,
    "Containers sharing the device.", source="hami.io/*-devices-allocated.")
DEVICE_SHARE_LIMIT = MetricSpec(
    "accel_device_share_limit", GAUGE, "{container}", DEVICE,
    "How many containers may share the device (HAMi deviceSplitCount).", source="hami.io/node-*-register count.")
DEVICE_HEALTHY = MetricSpec(
    "accel_device_registered_healthy", GAUGE, "1", DEVICE,
    "1 if the node's device plugin registered the device as healthy, else 0.", source="hami.io/node-*-register.")
HANDSHAKE = MetricSpec(
    "accel_node_handshake_timestamp_seconds", GAUGE, "s", (NODE, VENDOR, "state"),
    "Unix time of the node's last HAMi handshake, by state (reported, requesting, deleted).",
    source="hami.io/node-handshake*.")
DECODE_ERRORS = MetricSpec(
    "accel_collector_decode_errors_total", COUNTER, "{error}", ("error_type",),
    "Inputs skipped or partially decoded, by kind (decode_<decoder>_<code>, orphan_event, duplicate_event, "
    "unknown_reason_code...). Each is counted; the rest is processed.")
OBJECT_EVENTS = MetricSpec(
    "accel_collector_object_events_total", COUNTER, "{event}", ("kind", "type"),
    "Kubernetes object events processed, by kind (Pod, Node, Event, EventV1) and type.")
TRACKED = MetricSpec(
    "accel_collector_tracked_pods", GAUGE, "{pod}", (),
    "Accelerator pods the collector tracks now.")
WATCH = MetricSpec(
    "accel_collector_watch_events_total", COUNTER, "{event}", ("kind", "event"),
    "List/watch bookkeeping of the Kubernetes source, by kind: lists, relists, watch_restarts, bookmarks, "
    "errors_<reason>...")
SYNCED = MetricSpec(
    "accel_collector_synced", GAUGE, "1", (),
    "1 once the initial list of every followed kind finished (or a replay was read), else 0.")

FRAG_RATE = MetricSpec(
    "accel_cluster_fragmentation_ratio", GAUGE, "1", (),
    "FGD fragmentation rate: F_N(M) / free GPU, 0-1 (the share of free accelerator capacity the target "
    "workload M cannot use).", source="scheduler_events/fragmentation.py over the observed cluster state.")
FRAG_GPUS = MetricSpec(
    "accel_cluster_fragmented_gpus", GAUGE, "{gpu}", (MODEL,),
    "F_N(M) per accelerator model: free GPU (in whole-GPU units) that the target workload cannot use.",
    source="FGD F_n(M) summed over the model's nodes.")
FREE_GPUS = MetricSpec(
    "accel_cluster_free_gpus", GAUGE, "{gpu}", (MODEL,),
    "Free accelerator capacity per model, in whole-GPU units (HAMi: min(free cores, free memory) per device).",
    source="HAMi register and allocation annotations; whole-device allocatable minus requests.")
NODE_FRAG = MetricSpec(
    "accel_node_fragmented_gpus", GAUGE, "{gpu}", (NODE, MODEL),
    "F_n(M) of the most fragmented nodes (top N, --fragmentation-top-nodes), in whole-GPU units.",
    source="FGD F_n(M).")
STRANDED = MetricSpec(
    "accel_stranded_gpus", GAUGE, "{gpu}", ("reason",),
    "Free accelerator capacity on nodes whose CPU, memory or pod slots are exhausted, by reason, in GPUs.",
    source="node allocatable minus the requests of bound pods.")
PLACEABLE = MetricSpec(
    "accel_placeable_pods", GAUGE, "{pod}", ("shape",),
    "How many more pods of each target-workload shape fit the cluster as it is (each shape counted alone).",
    source="fragmentation.largest_placeable.")
UNPLACEABLE = MetricSpec(
    "accel_unplaceable_free_gpus", GAUGE, "{gpu}", ("shape",),
    "Free accelerator capacity that cannot serve a pod of this shape, in GPUs.",
    source="fragmentation.unplaceable_free.")
BLOCKED = MetricSpec(
    "accel_pending_blocked_by_fragmentation_pods", GAUGE, "{pod}", (),
    "Pending accelerator pods whose request fits the cluster's total free capacity but no single node.",
    source="fragmentation.blocked_by_fragmentation.")
WORKLOAD = MetricSpec(
    "accel_workload_shape_ratio", GAUGE, "1", ("shape", "source"),
    "Popularity p_m of each shape in the target workload M (0-1; source observed or configured).",
    source="shapes of tracked pods, most frequent covering --fragmentation-coverage.")

DECISION_FAMILIES = [ATTEMPTS, DECISIONS, REJECTIONS, NODE_REJECTIONS, PHASE_DURATION, PENDING, PENDING_POD, OLDEST_PENDING]
ALLOCATION_FAMILIES = [DEVICE_MEMORY_REGISTERED, DEVICE_MEMORY_ALLOCATED, DEVICE_CORES_REGISTERED,
                       DEVICE_CORES_ALLOCATED, DEVICE_SHARED, DEVICE_SHARE_LIMIT, DEVICE_HEALTHY, HANDSHAKE]
LEADER = MetricSpec(
    "accel_collector_leader", GAUGE, "1", (),
    "1 while this collector replica leads (holds the leader-election Lease, so it writes the history and pushes "
    "traces), else 0; 1 when leader election is off.", source="coordination.k8s.io/v1 Lease (--leader-elect).")
SELF_FAMILIES = [DECODE_ERRORS, OBJECT_EVENTS, TRACKED, WATCH, SYNCED, LEADER]
FRAGMENTATION_FAMILIES = [FRAG_RATE, FRAG_GPUS, FREE_GPUS, NODE_FRAG, STRANDED, PLACEABLE, UNPLACEABLE, BLOCKED,
                          WORKLOAD]
ALL = DECISION_FAMILIES + ALLOCATION_FAMILIES + FRAGMENTATION_FAMILIES + SELF_FAMILIES

GROUPS = [
    ("Placement decisions", DECISION_FAMILIES),
    ("Allocation from HAMi annotations (scheduler's view, not usage)", ALLOCATION_FAMILIES),
    ("Fragmentation (FGD, Weng et al. ATC'23)", FRAGMENTATION_FAMILIES),
    ("The collector itself", SELF_FAMILIES),
]
