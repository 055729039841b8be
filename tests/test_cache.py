import os

import numpy as np

from protloc._cache import DiskCache, hash_array, hash_file, hash_params


def test_round_trip_and_keys(tmp_path):
    cache = DiskCache(tmp_path, "features")
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    key = cache.key(hash_array(a), {"backbone": "x", "layer": "pooled"})
    assert key not in cache and cache.get(key) is None
    cache.set(key, {"features": a, "n": np.array(3)})
    got = cache.get(key)
    np.testing.assert_array_equal(got["features"], a)
    assert got["features"].dtype == np.float32 and int(got["n"]) == 3
    assert key in cache and len(cache) == 1
    other = cache.key(hash_array(a), {"backbone": "y", "layer": "pooled"})
    assert other != key and cache.get(other) is None
    cache.clear()
    assert len(cache) == 0


def test_namespaces_are_separate(tmp_path):
    DiskCache(tmp_path, "a").set("k" * 40, {"x": np.ones(1)})
    assert DiskCache(tmp_path, "b").get("k" * 40) is None


def test_torn_entry_is_ignored_and_overwritten(tmp_path):
    cache = DiskCache(tmp_path, "seg")
    key = "ab" + "0" * 38
    path = cache._path(key)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PK\x03\x04 truncated")  # what a crash mid-write could leave
    assert cache.get(key) is None
    cache.set(key, {"x": np.zeros(2)})
    np.testing.assert_array_equal(cache.get(key)["x"], np.zeros(2))


def test_failed_write_leaves_no_entry_and_no_temp_file(tmp_path):
    cache = DiskCache(tmp_path, "f")

    class Boom:
        def __array__(self, dtype=None, copy=None):
            raise RuntimeError("interrupted")

    key = "cd" + "1" * 38
    try:
        cache.set(key, {"x": np.ones(3), "y": Boom()})
    except RuntimeError:
        pass
    assert cache.get(key) is None
    assert os.listdir(cache._path(key).parent) == []


def test_hashes_depend_on_content_not_names(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"pixels")
    (tmp_path / "b.bin").write_bytes(b"pixels")
    (tmp_path / "c.bin").write_bytes(b"pixelz")
    assert hash_file(tmp_path / "a.bin") == hash_file(tmp_path / "b.bin")
    assert hash_file(tmp_path / "a.bin") != hash_file(tmp_path / "c.bin")
    assert hash_array(np.zeros((2, 3))) != hash_array(np.zeros((3, 2)))
    assert hash_params({"a": (1, 2)}) == hash_params({"a": [1, 2]})
