"""metrics/fid.py's real-statistics cache (RealStatisticsCache): computed once per key and read back after, its file
name and on-disk format (float64 statistics and every key field, in a nested folder), and its refusals, each in one
line: a key that differs, naming the field; a stale file, naming every field that differs; pickled or misshapen
contents; counts below 2. Nothing here runs Inception: the statistics are made up and written by the test."""

from __future__ import annotations

import re

import numpy as np
import pytest

from adala_bench.metrics.fid import FIDError, RealStatisticsCache

SHA = "ab" * 32
KEY_FIELDS = ("protocol", "count", "dims", "weights_sha256", "fingerprint")


def write_stats_file(path, mu, sigma, **key) -> None:
    """A real-statistics file in the cache's on-disk format: np.savez with `mu`, `sigma` and each key field (protocol,
    count, dims, weights_sha256, fingerprint) as a string, as RealStatisticsCache.load_or_compute writes it."""
    np.savez(path, mu=mu, sigma=sigma, **{name: np.str_(value) for name, value in key.items()})


def stored_key(protocol="cifar10-train", count=50, dims=64, weights_sha256=SHA, fingerprint="md5 manifest") -> dict:
    return {"protocol": str(protocol), "count": str(count), "dims": str(dims), "weights_sha256": weights_sha256,
            "fingerprint": fingerprint}


def not_called():
    raise AssertionError("compute() must not run when the cache file is there")


def test_cache_computes_once_keys_files_and_refuses_stale(tmp_path):
    cache = RealStatisticsCache(tmp_path / "stats")
    sha = "ab" * 32
    calls = []

    def compute():
        calls.append(1)
        return np.arange(64.0), np.eye(64)

    mu, sigma = cache.load_or_compute("cifar10-train", 50, 64, sha, "md5 manifest\nline 2", compute)
    again = cache.load_or_compute("cifar10-train", 50, 64, sha, "md5 manifest\nline 2", compute)
    assert len(calls) == 1 and np.array_equal(again[0], mu) and np.array_equal(again[1], sigma)
    path = cache.path("cifar10-train", 50, 64, sha)
    assert path.name == f"fid-real-cifar10-train-n50-d64-w{sha[:16]}.npz"
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary files left
    cache.load_or_compute("cifar10-train", 60, 64, sha, "md5 manifest\nline 2", compute)  # another key, another file
    assert len(calls) == 2 and cache.path("cifar10-train", 60, 64, sha).is_file()

    with pytest.raises(FIDError) as error:
        cache.load_or_compute("cifar10-train", 50, 64, sha, "another dataset", compute)
    assert "\n" not in str(error.value) and str(error.value).startswith(f"stale FID statistics {path}")
    assert f"delete {path}" in str(error.value) and len(calls) == 2  # never recomputed silently

    with pytest.raises(FIDError, match=r"compute\(\) for .* gave mu \(4,\) and sigma \(4, 4\), expected \(64,\)"):
        cache.load_or_compute("cifar10-train", 50, 64, "cd" * 32, "x", lambda: (np.zeros(4), np.eye(4)))
    with pytest.raises(FIDError, match="protocol name 'a/b'"):
        cache.path("a/b", 50, 64, sha)


def test_cache_path_accepts_upper_case_protocols_and_refuses_counts_below_2_or_not_int(tmp_path):
    """The protocol may use both cases; the count is an int >= 2 (2 is accepted, 1 and 2.0 are not)."""
    cache = RealStatisticsCache(tmp_path)
    assert cache.path("CIFAR10-Train.v2", 2, 64, SHA).name == f"fid-real-CIFAR10-Train.v2-n2-d64-w{SHA[:16]}.npz"
    for count in (1, 0, 2.0, "50"):
        with pytest.raises(FIDError, match=rf"image count must be an int >= 2, got {re.escape(repr(count))}"):
            cache.path("cifar10-train", count, 64, SHA)


def test_cache_writes_float64_statistics_and_its_key_in_a_nested_folder(tmp_path):
    """A first load_or_compute creates the cache folder with its parents and stores mu, sigma (float64, whatever
    compute() returned) and the key fields as strings; what it returns is float64 too."""
    cache = RealStatisticsCache(tmp_path / "data" / "synthetic" / "fid-stats")
    mu32, sigma32 = np.linspace(0, 1, 64, dtype=np.float32), np.eye(64, dtype=np.float32) / 3
    mu, sigma = cache.load_or_compute("cifar10-train", 50, 64, SHA, "md5 manifest", lambda: (mu32, sigma32))
    assert mu.dtype == sigma.dtype == np.float64
    np.testing.assert_array_equal(mu, mu32.astype(np.float64))
    np.testing.assert_array_equal(sigma, sigma32.astype(np.float64))
    path = cache.path("cifar10-train", 50, 64, SHA)
    with np.load(path, allow_pickle=False) as stored:
        assert sorted(stored.files) == sorted(("mu", "sigma") + KEY_FIELDS)
        assert {name: str(stored[name]) for name in KEY_FIELDS} == stored_key()
        assert stored["mu"].dtype == stored["sigma"].dtype == np.float64
        np.testing.assert_array_equal(stored["sigma"], sigma32.astype(np.float64))


def test_a_cache_file_in_the_stored_format_is_read_back_without_computing(tmp_path):
    """A file written in the on-disk format (e.g. by an earlier run) is used as it is: same key, no compute()."""
    cache = RealStatisticsCache(tmp_path)
    mu, sigma = np.arange(64.0), 2 * np.eye(64)
    write_stats_file(cache.path("cifar10-train", 50, 64, SHA), mu, sigma, **stored_key())
    got = cache.load_or_compute("cifar10-train", 50, 64, SHA, "md5 manifest", not_called)
    np.testing.assert_array_equal(got[0], mu)
    np.testing.assert_array_equal(got[1], sigma)


@pytest.mark.parametrize("field, stored", [("protocol", "cifar100-train"), ("count", "60"), ("dims", "192"),
                                           ("weights_sha256", "cd" * 32), ("fingerprint", "another dataset")])
def test_a_cache_file_whose_key_differs_is_refused_naming_the_field(tmp_path, field, stored):
    """Each key field is compared with the stored one; a difference is FIDError naming the field and both values
    (long ones by a digest), never a silent recompute."""
    cache = RealStatisticsCache(tmp_path)
    path = cache.path("cifar10-train", 50, 64, SHA)
    key = stored_key()
    write_stats_file(path, np.zeros(64), np.eye(64), **{**key, field: stored})
    shown = {value: repr(value) if len(value) <= 24 else "<sha256 " for value in (stored, key[field])}
    with pytest.raises(FIDError) as error:
        cache.load_or_compute("cifar10-train", 50, 64, SHA, "md5 manifest", not_called)
    message = str(error.value)
    assert message.startswith(f"stale FID statistics {path} ({field} {shown[stored]}")
    assert f" != {shown[key[field]]}" in message and message.endswith(f"; delete {path} to recompute them")


def test_a_stale_cache_file_names_every_field_that_differs(tmp_path):
    """Two fields differ: the message lists both, in key order."""
    cache = RealStatisticsCache(tmp_path)
    path = cache.path("cifar10-train", 50, 64, SHA)
    write_stats_file(path, np.zeros(64), np.eye(64), **{**stored_key(), "count": "60", "fingerprint": "b"})
    with pytest.raises(FIDError) as error:
        cache.load_or_compute("cifar10-train", 50, 64, SHA, "a", not_called)
    assert "(count '60' != '50', fingerprint 'b' != 'a'); delete" in str(error.value)


def test_a_cache_file_with_pickled_or_misshapen_contents_is_refused(tmp_path):
    """Cache files are data: an object (pickled) field is unreadable, not unpickled; statistics of another shape
    are refused naming the file, whether mu or sigma alone is wrong."""
    cache = RealStatisticsCache(tmp_path)
    path = cache.path("cifar10-train", 50, 64, SHA)
    key = stored_key()
    np.savez(path, mu=np.zeros(64), sigma=np.eye(64),
             **{name: np.str_(value) for name, value in key.items() if name != "fingerprint"},
             fingerprint=np.array(key["fingerprint"], dtype=object))
    with pytest.raises(FIDError, match=rf"^unreadable FID statistics {re.escape(str(path))} \(ValueError: "):
        cache.load_or_compute("cifar10-train", 50, 64, SHA, "md5 manifest", not_called)

    write_stats_file(path, np.zeros(4), np.eye(64), **key)
    with pytest.raises(FIDError, match=rf"^{re.escape(str(path))} gave mu \(4,\) and sigma \(64, 64\), expected"):
        cache.load_or_compute("cifar10-train", 50, 64, SHA, "md5 manifest", not_called)
    with pytest.raises(FIDError, match=r"^compute\(\) for .* gave mu \(64,\) and sigma \(4, 4\), expected"):
        cache.load_or_compute("cifar10-train", 60, 64, SHA, "md5 manifest", lambda: (np.zeros(64), np.eye(4)))
