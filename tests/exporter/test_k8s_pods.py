from exporter.attribution.k8s_pods import PodNameResolver


def test_resolver_maps_uids_and_survives_api_errors():
    calls = {"n": 0}

    def list_pods():
        calls["n"] += 1
        if calls["n"] == 2:
            raise ConnectionError("apiserver down")
        return [("uid-1", "ns-a", "pod-a"), ("uid-2", "ns-b", "pod-b")]

    r = PodNameResolver("node-a", list_pods=list_pods)
    assert r.lookup("uid-1") is None
    assert r.refresh_once() is True
    assert r.lookup("uid-1") == ("ns-a", "pod-a")
    assert r.refresh_once() is False          # failure keeps the last known map
    assert r.lookup("uid-2") == ("ns-b", "pod-b")
    assert r.lookup("uid-9") is None
