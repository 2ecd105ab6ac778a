"""Mock source: a deterministic simulated node, like HAMi's Mock Device Plugin.

For demos and clusters without hardware.  The inventory is configurable
(a dict, e.g. from the YAML config file's ``mock:`` section)::

    devices:
      - model: NVIDIA H100 80GB HBM3
        count: 2
        memory_gib: 80
        power_limit_watts: 700
        pod: {namespace: training, pod: llama-ft-0, container: trainer}
      - model: NVIDIA A100-SXM4-40GB
        memory_gib: 40
        mig: ["3g.20gb", "3g.20gb"]
      - model: NVIDIA L40S
        memory_gib: 48
        vgpu:                       # HAMi vGPU slices
          - {namespace: infer, pod: chat-7b-0, container: server, memory_gib: 12, cores: 0.3}
    load: {period_seconds: 600, base: 0.4, amplitude: 0.35}
    first_index: 0                  # index of the first device
    # per device spec, optional: uuids: [GPU-...] (one per count); per vgpu: pod_uid

Every reading is a pure function of the inventory and the injected clock
(a sine wave per device, phase-shifted by index), so two exporters given
the same time report the same values.  Units follow :mod:`exporter.model`.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from typing import Any

from exporter.model import GIB_, Attribution, Device, Slice, Snapshot

DEFAULT_INVENTORY: dict[str, Any] = {
    "devices": [
        {"model": "NVIDIA H100 80GB HBM3", "count": 2, "memory_gib": 80, "power_limit_watts": 700,
         "pod": {"namespace": "training", "pod": "llama-ft-0", "container": "trainer"}},
        {"model": "NVIDIA A100-SXM4-40GB", "memory_gib": 40, "power_limit_watts": 400,
         "mig": ["3g.20gb", "3g.20gb"]},
        {"model": "NVIDIA L40S", "memory_gib": 48, "power_limit_watts": 350,
         "vgpu": [
             {"namespace": "inference", "pod": "chat-7b-6f9c4-x2vqp", "container": "server",
              "memory_gib": 16, "cores": 0.3},
             {"namespace": "inference", "pod": "embed-5d8b7-kq2lm", "container": "embed",
              "memory_gib": 8, "cores": 0.2},
             {"namespace": "research", "pod": "notebook-ana-0", "container": "jupyter",
              "memory_gib": 12, "cores": 0.5, "idle": True},
         ]},
    ],
    "load": {"period_seconds": 600, "base": 0.45, "amplitude": 0.35},
}

#: per-model facts the mock reports (compute capability, memory clock Hz)
_MODEL_FACTS = {
    "NVIDIA H100 80GB HBM3": ("9.0", 2_619e6), "NVIDIA H200": ("9.0", 3_201e6),
    "NVIDIA A100-SXM4-40GB": ("8.0", 1_215e6), "NVIDIA A100-SXM4-80GB": ("8.0", 1_593e6),
    "NVIDIA L40S": ("8.9", 9_001e6), "NVIDIA L4": ("8.9", 6_251e6), "Tesla T4": ("7.5", 5_001e6),
    "Tesla V100-PCIE-32GB": ("7.0", 877e6),
}
_INVENTORY_KEYS = {"devices", "load", "first_index"}
_DEVICE_KEYS = {"model", "count", "memory_gib", "power_limit_watts", "pod", "mig", "vgpu", "uuids"}
_VGPU_KEYS = {"namespace", "pod", "container", "memory_gib", "cores", "idle", "pod_uid"}

_MIG_MEM_GIB = {"1g.5gb": 5, "1g.10gb": 10, "2g.10gb": 10, "3g.20gb": 20, "4g.20gb": 20, "7g.40gb": 40,
                "1g.10gb+me": 10, "1g.20gb": 20, "2g.20gb": 20, "3g.40gb": 40, "4g.40gb": 40, "7g.80gb": 80}


def _uuid(prefix: str, seed: str) -> str:
    h = hashlib.sha256(seed.encode()).hexdigest()
    return f"{prefix}-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


class MockSource:
    """Deterministic simulated node.

    ``inventory``: see the module docstring (default :data:`DEFAULT_INVENTORY`).
    ``clock``: Unix seconds; the load pattern follows it, and the counters
    (energy, PCIe bytes, throttle time) count from the source's start.
    ``seed``: changes UUIDs, so two mock nodes don't collide.
    Raises ValueError on a malformed inventory (at construction).
    """

    name = "mock"

    def __init__(self, inventory: dict[str, Any] | None = None, *, clock: Callable[[], float] = time.time,
                 seed: str = "mock-node") -> None:
        self.inventory = inventory or DEFAULT_INVENTORY
        self.clock = clock
        self.seed = seed
        self._start = None
        self._validate()

    def _validate(self) -> None:
        if not isinstance(self.inventory, dict):
            raise ValueError("mock inventory must be a mapping with a 'devices' list")
        unknown = set(self.inventory) - _INVENTORY_KEYS
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(sorted(unknown))}; valid: {', '.join(sorted(_INVENTORY_KEYS))}")
        devs = self.inventory.get("devices")
        if not isinstance(devs, list) or not devs:
            raise ValueError("mock inventory needs a non-empty 'devices' list")
        for i, d in enumerate(devs):
            if not isinstance(d, dict) or "model" not in d or "memory_gib" not in d:
                raise ValueError(f"mock device #{i} needs 'model' and 'memory_gib'")
            bad = set(d) - _DEVICE_KEYS
            if bad:
                raise ValueError(f"mock device #{i}: unknown key(s) {', '.join(sorted(bad))}; "
                                 f"valid: {', '.join(sorted(_DEVICE_KEYS))}")
            for v in d.get("vgpu") or []:
                bad = set(v) - _VGPU_KEYS if isinstance(v, dict) else {"(not a mapping)"}
                if bad:
                    raise ValueError(f"mock device #{i} vgpu: unknown key(s) {', '.join(sorted(bad))}")
            if d.get("mig") and d.get("vgpu"):
                raise ValueError(f"mock device #{i}: a device is either MIG or HAMi vGPU, not both")
            for p in d.get("mig") or []:
                if p not in _MIG_MEM_GIB:
                    raise ValueError(f"mock device #{i}: unknown MIG profile {p!r}; known: {sorted(_MIG_MEM_GIB)}")

    def start(self) -> None:
        if self._start is None:
            self._start = self.clock()

    def close(self) -> None:
        pass

    def _load(self, index: int, now: float) -> float:
        load = self.inventory.get("load", {})
        period = float(load.get("period_seconds", 600))
        base = float(load.get("base", 0.45))
        amp = float(load.get("amplitude", 0.35))
        v = base + amp * math.sin(2 * math.pi * (now / period) + index * 0.9)
        return round(min(1.0, max(0.0, v)), 4)

    def collect(self) -> Snapshot:
        """Return the node's state at ``clock()`` (pure function of time)."""
        now = self.clock()
        if self._start is None:
            self._start = now
        snap = Snapshot(source=self.name, timestamp=now)
        index = int(self.inventory.get("first_index", 0))
        for spec in self.inventory["devices"]:
            uuids = spec.get("uuids") or []
            for k in range(int(spec.get("count", 1))):
                self._device(spec, index, now, snap, uuids[k] if k < len(uuids) else None)
                index += 1
        return snap

    def _device(self, spec: dict[str, Any], index: int, now: float, snap: Snapshot, uuid: str | None = None) -> None:
        model = spec["model"]
        uuid = uuid or _uuid("GPU", f"{self.seed}/{index}/{model}")
        total = int(spec["memory_gib"] * GIB_)
        load = self._load(index, now)
        limit = float(spec.get("power_limit_watts", 400))
        idle_w = round(limit * 0.12, 1)
        power = round(idle_w + (limit - idle_w) * load, 1)
        mig = spec.get("mig") or []
        vgpus = spec.get("vgpu") or []
        cc, mem_clock = _MODEL_FACTS.get(model, ("8.0", 1_593e6))
        up = max(0.0, now - self._start)
        dev = Device(
            hw_id=uuid, vendor="nvidia", model=model, kind="gpu", index=index, name=f"gpu{index}",
            serial=f"MOCK{index:09d}", driver_version="570.133.20", firmware_version="96.00.99.00.01",
            pci_bus_id=f"0000:{0x18 + index * 0x10:02x}:00.0", numa_node=index // 4, compute_capability=cc,
            memory_total_bytes=total, power_watts=power, power_limit_watts=limit,
            # counters run from the source's start: mean power x uptime
            energy_joules=round((idle_w + (limit - idle_w) * 0.45) * up, 3),
            temperatures={"gpu": round(32 + 45 * load, 1), "memory": round(36 + 40 * load, 1)},
            temperature_limits={"high.degraded": 87.0, "high.critical": 92.0},
            clocks_hz={"sm": round(1_980e6 * (0.5 + 0.5 * load)), "memory": mem_clock},
            throttle_seconds={"power": round(up * 0.02 * (index + 1), 3), "thermal": 0.0,
                              "sync_boost": 0.0, "low_util": round(up * 0.1, 3)},
            errors={("corrected", "dram"): index, ("uncorrected", "dram"): 0},
            io_bytes={("pcie", "receive"): int(up * 2e8 * (index + 1) * (0.2 + load)),
                      ("pcie", "transmit"): int(up * 8e7 * (index + 1) * (0.2 + load))},
        )
        if not mig:
            dev.utilization = {"general": load, "encoder": 0.0, "decoder": 0.0}
            dev.memory_bandwidth_utilization = round(load * 0.6, 4)
        pod = spec.get("pod")
        if pod and not vgpus and not mig:
            dev.attribution = Attribution(pod.get("namespace"), pod.get("pod"), pod.get("container"),
                                          pod.get("pod_uid") or
                                          _uuid("pod", f"{pod.get('namespace')}/{pod.get('pod')}")[4:])
            dev.memory_used_bytes = int(total * (0.55 + 0.4 * load))
        used_total = 0
        for gi, profile in enumerate(mig):
            mem = _MIG_MEM_GIB[profile] * GIB_
            used = int(mem * (0.3 + 0.5 * self._load(index + gi + 1, now)))
            used_total += used
            snap.slices.append(Slice(
                hw_id=_uuid("MIG", f"{uuid}/{gi}"), parent_id=uuid, slice_type="mig",
                slice_id=f"gi{gi + 1}/ci0", vendor="nvidia", model=model, parent_index=index,
                name=f"gpu{index}/mig/gi{gi + 1}/ci0", profile=profile,
                memory_used_bytes=used, memory_limit_bytes=mem))
        for vi, v in enumerate(vgpus):
            mem = int(v.get("memory_gib", 4) * GIB_)
            cores = float(v.get("cores", 1.0))
            idle = bool(v.get("idle"))
            util = 0.0 if idle else round(min(cores, load * cores * 1.1), 4)
            used = int(mem * (0.1 if idle else 0.5 + 0.4 * load))
            used_total += used
            pod_uid = v.get("pod_uid") or _uuid("pod", f"{v.get('namespace')}/{v.get('pod')}")[4:]
            cont = v.get("container", "main")
            snap.slices.append(Slice(
                hw_id=f"hami-vgpu-{pod_uid}-{cont}-0", parent_id=uuid, slice_type="hami_vgpu",
                slice_id=f"{pod_uid}/{cont}/0", vendor="nvidia", model=model, parent_index=index,
                name=f"gpu{index}/vgpu{vi}", memory_used_bytes=used, memory_limit_bytes=mem,
                core_limit=cores, utilization=util,
                last_kernel_time=(now - 7200.0) if idle else now - 1.0,
                attribution=Attribution(v.get("namespace"), v.get("pod"), cont, pod_uid)))
        if mig or vgpus:
            dev.memory_used_bytes = used_total + 512 * 1024 * 1024
        snap.devices.append(dev)
