from exporter.attribution.k8s_pods import PodInfo, PodNameResolver


def test_resolver_maps_uids_and_survives_api_errors():
    calls = {"n": 0}

    def list_pods():
        calls["n"] += 1
        if calls["n"] == 2:
            raise ConnectionError("apiserver down")
        return [PodInfo("uid-1", "ns-a", "pod-a"), PodInfo("uid-2", "ns-b", "pod-b")]

    r = PodNameResolver("node-a", list_pods=list_pods)
    assert r.lookup("uid-1") is None
    assert r.refresh_once() is True
    assert r.lookup("uid-1") == ("ns-a", "pod-a")
    assert r.refresh_once() is False          # failure keeps the last known map
    assert r.lookup("uid-2") == ("ns-b", "pod-b")
    assert r.lookup("uid-9") is None


def test_resolver_shares_its_last_good_list():
    """The PodResources attributor's fallback reads this list: one API list per refresh."""
    pods = [PodInfo("uid-1", "ns-a", "pod-a", ("main",), {"hami.io/vgpu-devices-allocated": "GPU-a,NVIDIA,1,0:;"})]
    calls = {"n": 0}

    def list_pods():
        calls["n"] += 1
        if calls["n"] > 1:
            raise ConnectionError("down")
        return pods

    r = PodNameResolver("node-a", list_pods=list_pods)
    assert r.pods() == []
    r.refresh_once()
    r.refresh_once()  # fails: the last good list stays
    assert r.pods() == pods and calls["n"] == 2
