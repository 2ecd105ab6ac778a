"""Parser for ``nvidia-smi -L`` (the device list).

Source: NVIDIA's ``nvidia-smi -L``.  Capture seen: driver 590.48.01 on an
H100 80GB HBM3 in MIG mode.  Line shapes::

    GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-xxxxxxxx-...)
      MIG 3g.40gb     Device  0: (UUID: MIG-xxxxxxxx-...)

Drivers before R470 printed MIG UUIDs as ``MIG-GPU-<gpu uuid>/<gi>/<ci>``;
those GI/CI ids are used for the slice id when present.
"""

from __future__ import annotations

import re

from exporter.model import Device, Parsed, Problem, Slice
from exporter.parsers.nvidia_smi_xml import VENDOR, clean, device_hw_id

_GPU = re.compile(r"^GPU\s+(?P<index>\d+):\s*(?P<model>.*?)\s*(?:\(UUID:\s*(?P<uuid>[^)]*?)\s*\))?\s*$")
_MIG = re.compile(
    r"^\s+MIG\s+(?P<profile>\S+)\s+Device\s+(?P<index>\d+):\s*(?:\(UUID:\s*(?P<uuid>[^)]*?)\s*\))?\s*$"
)
_OLD_MIG_UUID = re.compile(r"^MIG-GPU-[^/]+/(?P<gi>\d+)/(?P<ci>\d+)$")


def parse(text: str) -> Parsed:
    """Parse ``nvidia-smi -L`` into devices and MIG slices.

    * ``GPU N: <model> (UUID: GPU-...)`` -> :class:`Device` with ``hw_id`` =
      the UUID (``nvidia-gpu<N>`` if the UUID is missing), ``index`` = N,
      ``name`` = ``gpu<N>``, ``model``; no readings.
    * ``MIG <profile> Device M: (UUID: MIG-...)`` under a GPU line ->
      :class:`Slice` with ``slice_type="mig"``, ``hw_id`` = the MIG UUID (else
      ``<gpu hw_id>/mig<M>``), ``profile``, ``parent_id`` = the GPU's
      ``hw_id``, ``info["mig_device_index"]`` = M.  ``-L`` does not print GI/CI
      ids, so ``slice_id`` is ``mig<M>`` (the NVML source's name for a MIG
      device without GI/CI ids) unless an old-style
      ``MIG-GPU-<uuid>/<gi>/<ci>`` UUID gives ``gi<gi>/ci<ci>``.

    Any other non-blank line gives a ``parse`` Problem (the rest is kept).
    """
    out = Parsed()
    parent: Device | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        gpu = _GPU.match(line)
        if gpu is not None:
            index = int(gpu.group("index"))
            uuid = clean(gpu.group("uuid"))
            parent = Device(
                hw_id=device_hw_id(uuid, None, None, index),
                vendor=VENDOR,
                model=gpu.group("model"),
                kind="gpu",
                index=index,
                name=f"gpu{index}",
            )
            out.devices.append(parent)
            continue
        mig = _MIG.match(line)
        if mig is not None and parent is not None:
            mig_index = mig.group("index")
            mig_uuid = clean(mig.group("uuid"))
            slice_id = f"mig{mig_index}"
            old = _OLD_MIG_UUID.match(mig_uuid or "")
            if old is not None:
                slice_id = f"gi{old.group('gi')}/ci{old.group('ci')}"
            out.slices.append(
                Slice(
                    hw_id=mig_uuid or f"{parent.hw_id}/mig{mig_index}",
                    parent_id=parent.hw_id,
                    slice_type="mig",
                    slice_id=slice_id,
                    vendor=VENDOR,
                    model=parent.model,
                    kind="gpu",
                    parent_index=parent.index,
                    profile=mig.group("profile"),
                    info={"mig_device_index": mig_index},
                )
            )
            continue
        reason = "MIG line before any GPU line" if mig is not None else "unrecognised line"
        out.problems.append(Problem(kind="parse", detail=f"line {number}: {reason}: {line.strip()[:80]!r}"))
    return out
