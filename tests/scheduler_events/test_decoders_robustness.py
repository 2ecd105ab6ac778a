"""Every public decoder, fed malformed input of every kind, returns a result
whose errors use the bounded codes -- it never raises.  Also the shared
helpers in ``scheduler_events.decoders.common``."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler_events.decoders import common, hami_events, hami_node, hami_pod, kube_scheduler, reporter, volcano
from scheduler_events.decoders.common import (
    ERROR_CODES,
    MAX_FRAGMENT,
    DecodeError,
    error,
    parse_go_bool,
    parse_go_int,
    parse_rfc3339,
)

# Text drawn mostly from the grammars' own alphabet, so the fuzzer reaches
# deep into the parsers instead of failing at the first character.
TOKENS = [
    ":", ";", ",", ", ", ".", ". ", " ", "/", "(", ")", "[", "]", "{", "}", "_", "-", "\n", '"',
    "0", "1", "8", "10", "100", "-1", "99999999999", "true", "false", "GPU-", "NVIDIA", "hami-core",
    "0/3 nodes are available: ", "0/2 nodes are unavailable: ", "preemption: ", "node(s) had untolerated taint ",
    "Insufficient nvidia.com/gpu", "1/8 CardInsufficientMemory", "NodeUnfitPod", " ...",
    "find fit node(", " nodes not fit, ", " nodes fit(", "no available node, ", " nodes do not meet",
    "Successfully binding node [", "] to ", "Successfully assigned ", " to ",
    "Requesting_", "Reported ", "Deleted_", "2024-11-10 11:05:48", ".756620661 +0000 UTC m=+2976.6", "2026.07.24 08:39:37",
    "tasks in gang unschedulable: ", "pod group is not ready, ", "; Pending: ", ". Origin reason is ", "minAvailable",
    '[{"id":"GPU-a","health":true}]', '{"devices":[]}', "[", "]", "{", "}", "é", "\x00",
]
grammar_text = st.lists(st.sampled_from(TOKENS) | st.text(max_size=6), max_size=25).map("".join)
any_text = grammar_text | st.text(max_size=200)
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(
        ["type", "status", "reason", "message", "conditions", "metadata", "spec", "status", "minMember",
         "source", "component", "reportingController", "regarding", "involvedObject", "series", "count",
         "eventTime", "lastObservedTime", "note", "name", "namespace"]) | st.text(max_size=8), children, max_size=5),
    max_leaves=20,
)
anything = any_text | json_values

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _codes(result) -> set[str]:
    errors = result.all_errors() if hasattr(result, "all_errors") else result.errors
    return {e.code for e in errors}


def check(result) -> None:
    assert hasattr(result, "errors")
    for err in result.errors:
        assert isinstance(err, DecodeError)
        assert err.code in ERROR_CODES
        assert len(err.fragment) <= MAX_FRAGMENT
    assert "internal" not in _codes(result), result.errors


REGISTER_KEYS = st.sampled_from(
    [None, "hami.io/node-nvidia-register", "metax-tech.com/node-gpu-devices", "enflame.com/gcu-drs-capacity",
     "volcano.sh/node-vgpu-register", "hami.io/node-register-Ascend910B3", "kubernetes.io/x"]
)


@SETTINGS
@given(value=anything, key=REGISTER_KEYS)
def test_node_register_never_raises(value, key):
    check(hami_node.decode_node_register(value, key))


@SETTINGS
@given(value=anything)
def test_node_small_decoders_never_raise(value):
    check(hami_node.decode_handshake(value))
    check(hami_node.decode_node_lock(value))
    check(hami_node.decode_device_cordon(value))
    hami_node.classify_node_annotation(value)


@SETTINGS
@given(value=anything, scale=st.integers(min_value=-5, max_value=200))
def test_pod_decoders_never_raise(value, scale):
    check(hami_pod.decode_container_devices(value, core_scales={"GPU-a": scale}, default_core_scale=scale))
    check(hami_pod.decode_bind_phase(value))
    check(hami_pod.decode_unix_seconds(value))
    hami_pod.classify_allocation_key(value)


@SETTINGS
@given(annotations=st.dictionaries(
    st.sampled_from(["hami.io/vgpu-devices-allocated", "hami.io/vgpu-devices-to-allocate", "hami.io/bind-phase",
                     "hami.io/vgpu-time", "hami.io/bind-time", "hami.io/vgpu-node", "volcano.sh/vgpu-ids-new"]) | st.text(max_size=10),
    anything, max_size=6) | anything)
def test_pod_annotations_never_raise(annotations):
    check(hami_pod.decode_pod_annotations(annotations))


@SETTINGS
@given(reason=st.sampled_from(sorted(hami_events.HAMI_EVENT_REASONS)) | anything, message=anything)
def test_hami_events_never_raise(reason, message):
    check(hami_events.decode_hami_event(reason, message))
    check(hami_events.decode_node_reasons(message))


@SETTINGS
@given(message=anything)
def test_kube_scheduler_never_raises(message):
    result = kube_scheduler.decode_failed_scheduling(message)
    check(result)
    for err in result.all_errors():
        assert err.code in ERROR_CODES
    check(kube_scheduler.decode_scheduled(message))
    kube_scheduler.classify_reason(message)
    kube_scheduler.best_scheduling_text(message, message)
    kube_scheduler.pod_scheduled_condition(message)


@SETTINGS
@given(message=anything)
def test_volcano_never_raises(message):
    check(volcano.decode_volcano_message(message))
    check(volcano.decode_job_fit_error(message))
    check(volcano.decode_podgroup(message))
    check(volcano.decode_podgroup_condition(message))


@SETTINGS
@given(event=json_values)
def test_reporter_never_raises(event):
    check(reporter.identify_reporter(event))
    check(reporter.event_view(event))


@SETTINGS
@given(st.lists(st.sampled_from(["1 Insufficient cpu", "2 node(s) had untolerated taint {a: b, c}", "3 1/8 CardTypeMismatch, 7/8 NumaNotFit", "10 Too many pods"]), min_size=1, max_size=8))
def test_histogram_round_trip(entries):
    """Any list of well-formed entries joined by ", " decodes back to the same entries."""
    message = "0/10 nodes are available: " + ", ".join(entries) + "."
    decoded = kube_scheduler.decode_failed_scheduling(message)
    assert [f"{r.count} {r.reason}" for r in decoded.reasons] == entries


# --------------------------------------------------------------------------- the guard


def test_guard_turns_a_bug_into_an_internal_error(monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(hami_node, "_decode_colon", boom)
    result = hami_node.decode_node_register("GPU-a,1,1,1,T,0,true:")
    assert result.errors == (DecodeError("internal", "RuntimeError: bug"),)
    assert result.devices == ()


# --------------------------------------------------------------------------- common helpers


def test_error_clamps_code_and_fragment():
    assert error("nonsense", "x") == DecodeError("internal", "x")
    long = error("no_match", "a" * 500)
    assert len(long.fragment) == MAX_FRAGMENT and long.fragment.endswith("…")
    assert error("bad_type", 5) == DecodeError("bad_type", "5")


@pytest.mark.parametrize(
    ("text", "bits", "expected"),
    [("10", 64, 10), ("-3", 64, -3), ("+7", 64, 7), ("2147483647", 32, 2147483647), ("2147483648", 32, None),
     ("1.0", 64, None), (" 1", 64, None), ("1_000", 64, None), ("", 64, None), (True, 64, None), (5, 64, 5), (None, 64, None)],
)
def test_parse_go_int(text, bits, expected):
    assert parse_go_int(text, bits) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1", True), ("t", True), ("TRUE", True), ("True", True), ("0", False), ("F", False), ("false", False),
     ("yes", None), ("tRuE", None), ("", None), (None, None)],
)
def test_parse_go_bool(text, expected):
    assert parse_go_bool(text) == expected


def test_parse_rfc3339():
    assert parse_rfc3339("2025-10-20T03:07:02Z") == datetime(2025, 10, 20, 3, 7, 2, tzinfo=timezone.utc)
    assert parse_rfc3339("2025-10-20T03:07:02.123456789+02:00") == datetime(
        2025, 10, 20, 3, 7, 2, 123456, tzinfo=timezone(timedelta(hours=2))
    )
    assert parse_rfc3339("2025-10-20T03:07:02") is None  # no zone
    assert parse_rfc3339("2025-13-20T03:07:02Z") is None
    assert parse_rfc3339(None) is None
    assert common.ERROR_CODES >= {"truncated", "no_match"}
