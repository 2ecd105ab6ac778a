"""Property-based: any Unicode pod, namespace, container or model name
(quotes, backslashes, newlines, NUL) keeps the exposition valid and
round-trips exactly."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from exporter.model import Attribution, Device, Slice, Snapshot
from exporter.render import RenderOptions
from tests.helpers import promtool_check_metrics, scrape

names = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=40)


class _Static:
    name = "static"

    def __init__(self, snap):
        self.snap = snap

    def start(self):
        pass

    def collect(self):
        return self.snap

    def close(self):
        pass


def _snap(ns, pod, container, model):
    att = Attribution(ns, pod, container, "uid-1")
    return Snapshot("static", 100.0,
                    devices=[Device("GPU-x", "nvidia", model, index=0, memory_used_bytes=1, attribution=att)],
                    slices=[Slice("hami-vgpu-1", "GPU-x", "hami_vgpu", "uid-1/c/0", "nvidia", model,
                                  memory_used_bytes=2, attribution=att)])


@settings(max_examples=150, deadline=None)
@given(ns=names, pod=names, container=names, model=names)
def test_any_label_value_round_trips(ns, pod, container, model):
    text = scrape([_Static(_snap(ns, pod, container, model))], RenderOptions(node_name="n"))
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    dev = fams["hw_gpu_memory_usage_bytes"].samples[0]
    assert dev.labels["k8s_pod_name"] == pod
    assert dev.labels["k8s_namespace_name"] == ns
    assert dev.labels["k8s_container_name"] == container
    assert dev.labels["hw_model"] == model
    sl = fams["accel_slice_memory_usage_bytes"].samples[0]
    assert sl.labels["k8s_pod_name"] == pod and sl.value == 2


def test_nasty_values_pass_promtool():
    nasty = 'a"b\\c\nd\te\x00f\u2028g🚀'
    text = scrape([_Static(_snap(nasty, nasty, nasty, nasty))], RenderOptions(node_name=nasty))
    promtool_check_metrics(text)
