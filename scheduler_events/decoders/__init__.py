"""Pure decoders for the scheduler-event collector: functions over strings
and dicts, with no I/O, clock or globals, one module per format.

* :mod:`.hami_node`      HAMi node register annotations, handshake, node lock, device cordon
* :mod:`.hami_pod`       HAMi pod allocation annotations, bind phase, Filter/Bind times
* :mod:`.hami_events`    HAMi scheduler-extender Events and per-node reason strings
* :mod:`.kube_scheduler` kube-scheduler ``FailedScheduling`` / ``Scheduled`` texts, ``PodScheduled``
* :mod:`.volcano`        Volcano gang messages and PodGroup conditions
* :mod:`.reporter`       who reported an Event (never by reason); one view of both Event APIs
* :mod:`.common`         :class:`~.common.DecodeError` and shared helpers

No public decoder raises on bad input: each result carries ``errors``, a
tuple of :class:`~.common.DecodeError` (a bounded ``code`` plus the raw
fragment), so a caller can count every skip by kind.
"""
