"""Edges of the FID path that the comparisons with pytorch-fid (test_fid.py, test_independent_fid.py) do not reach:
InceptionFeatures' defaults, device and load errors, the weights' sha256 and label for a given file, statistics in
float64 whatever dtype they come in, every shape check refusing each wrong argument on its own, the real-statistics
cache's on-disk format and its refusals, and how the GAN task keys its Inception, its real statistics and its cache.

Inception is built but never runs forward here: the memo of `inception_features` is checked with a recording
stand-in, and the GAN task's real statistics come from a cache file the test writes (random-weights file from
conftest `random_home`; nothing reaches the network).
"""

from __future__ import annotations

import hashlib
import inspect
import os
import re

import numpy as np
import pytest
import torch
from pytorch_fid.inception import InceptionV3

from adala_bench.data.cifar10 import Cifar10Arrays
from adala_bench.metrics import fid
from adala_bench.metrics.fid import (FIDError, InceptionFeatures, RealStatisticsCache, activation_statistics,
                                     frechet_distance, paper_preprocess)
from adala_bench.settings import FidSettings
from adala_bench.tasks import gan_fid
from adala_bench.tasks.gan_fid import GeneratorFid, fid_cache_dir, inception_features, train_images_fingerprint

pytestmark = pytest.mark.usefixtures("no_network")  # conftest: every download fails, as offline

SHA = "ab" * 32
KEY_FIELDS = ("protocol", "count", "dims", "weights_sha256", "fingerprint")


@pytest.fixture
def torch_home(random_home, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(random_home))
    return random_home


def write_stats_file(path, mu, sigma, **key) -> None:
    """A real-statistics file in the cache's on-disk format: np.savez with `mu`, `sigma` and each key field (protocol,
    count, dims, weights_sha256, fingerprint) as a string, as RealStatisticsCache.load_or_compute writes it."""
    np.savez(path, mu=mu, sigma=sigma, **{name: np.str_(value) for name, value in key.items()})


def stored_key(protocol="cifar10-train", count=50, dims=64, weights_sha256=SHA, fingerprint="md5 manifest") -> dict:
    return {"protocol": str(protocol), "count": str(count), "dims": str(dims), "weights_sha256": weights_sha256,
            "fingerprint": fingerprint}


def not_called():
    raise AssertionError("compute() must not run when the cache file is there")


# ---- activation statistics -------------------------------------------------------------------------------------

def test_activation_statistics_of_float32_features_are_those_of_their_float64_values():
    """The mean and covariance are taken in float64 even when the features come in float32 (a float32 mean of large
    activations is off in its last digits)."""
    features = (1000 + np.random.default_rng(0).standard_normal((500, 8))).astype(np.float32)
    exact = features.astype(np.float64)
    mu, sigma = activation_statistics(features)
    assert mu.dtype == sigma.dtype == np.float64
    np.testing.assert_array_equal(mu, exact.mean(axis=0))
    np.testing.assert_array_equal(sigma, np.cov(exact, rowvar=False))
    assert not np.array_equal(features.mean(axis=0), mu)  # the float32 mean differs: the test can tell them apart


def test_activation_statistics_accept_two_rows_and_refuse_fewer_or_other_shapes():
    """N = 2 is the smallest set with an unbiased covariance; one row, a 1-D or a 3-D array is refused."""
    mu, sigma = activation_statistics([[1.0, 2.0], [3.0, 6.0]])
    np.testing.assert_array_equal(mu, [2.0, 4.0])
    np.testing.assert_array_equal(sigma, [[2.0, 4.0], [4.0, 8.0]])  # deviations (-1, -2), (1, 2), divided by N - 1
    for bad in (np.ones((1, 4)), np.arange(10.0), np.ones((4, 2, 2))):
        with pytest.raises(FIDError, match=r"N x dims array with N >= 2, got shape"):
            activation_statistics(bad)


# ---- Inception ------------------------------------------------------------------------------------------------

def test_inception_features_defaults_and_batch_size_check(torch_home):
    """InceptionFeatures() is the protocol's: pool3 (2048-d) on the CPU in batches of 50. A batch size is an int >= 1
    (1 is accepted)."""
    features = InceptionFeatures()
    assert (features.device, features.dims, features.batch_size) == (torch.device("cpu"), 2048, 50)
    assert {parameter.device for parameter in features.model.parameters()} == {torch.device("cpu")}
    assert features.weights_sha256 == fid.weights_sha256(fid.inception_weights_file())
    assert features.weights_label == fid.RANDOM_LABEL
    assert InceptionFeatures("cpu", dims=64, batch_size=1).batch_size == 1
    for bad in (0, -3, 2.0, "50"):
        with pytest.raises(FIDError, match=rf"batch_size must be a positive int, got {re.escape(repr(bad))}"):
            InceptionFeatures("cpu", dims=64, batch_size=bad)


def test_inception_features_puts_the_model_on_the_requested_device(torch_home):
    """The network is moved to `device` (here PyTorch's storage-less "meta" device, which every build has; a GPU in
    real runs), not left where the weights were loaded."""
    features = InceptionFeatures(torch.device("meta"), dims=64)
    assert features.device == torch.device("meta")
    assert {parameter.device for parameter in features.model.parameters()} == {torch.device("meta")}


def test_weights_sha256_hashes_each_given_file_whole(tmp_path, torch_home, monkeypatch):
    """The sha256 of all the bytes of the file given (more than one read chunk), for each file on its own, even two
    of the same size and modification time."""
    monkeypatch.setattr(fid, "_sha256_memo", {})
    first, second = tmp_path / "first.pth", tmp_path / "second.pth"
    first.write_bytes(bytes(range(256)) * 12289)  # 3 MiB + 256 bytes
    second.write_bytes(bytes(reversed(range(256))) * 12289)
    for path in (first, second):
        os.utime(path, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    for path in (first, second, first):
        assert fid.weights_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert fid.weights_sha256(str(second)) == hashlib.sha256(second.read_bytes()).hexdigest()


def test_weights_are_real_and_the_label_judge_the_given_file(tmp_path, torch_home, monkeypatch):
    """A file given by path is judged by its own sha256, not by the default (random-weights) file's."""
    given = tmp_path / "pt_inception.pth"
    given.write_bytes(b"stands in for the real weights")
    monkeypatch.setattr(fid, "WEIGHTS_SHA256_PREFIX", hashlib.sha256(given.read_bytes()).hexdigest()[:8])
    assert fid.weights_are_real(given) and not fid.weights_are_real()
    assert fid.weights_label(given) == fid.REAL_LABEL and fid.weights_label() == fid.RANDOM_LABEL
    assert not fid.weights_are_real(tmp_path / "missing.pth")
    with pytest.raises(FIDError, match="no Inception weights at"):
        fid.weights_label(tmp_path / "missing.pth")


class Unloadable:
    """Stands in for pytorch-fid's InceptionV3 when the weights file does not load: raises `error` on construction."""

    BLOCK_INDEX_BY_DIM = InceptionV3.BLOCK_INDEX_BY_DIM
    error: Exception = RuntimeError()

    def __init__(self, output_blocks):
        raise self.error


@pytest.mark.parametrize("error, shown", [
    (RuntimeError("Error(s) in loading state_dict for Inception3:\n\tMissing key(s): conv.weight"),
     "(Error(s) in loading state_dict for Inception3:)"),
    (RuntimeError("  unexpected EOF, expected 42 more bytes  "), "(unexpected EOF, expected 42 more bytes)"),
    (EOFError(), "(EOFError)"),
])
def test_weights_that_do_not_load_are_one_line_naming_the_errors_first_line(torch_home, monkeypatch, error, shown):
    """The FIDError carries the loader's first line of text, or the error's type when it has no text."""
    monkeypatch.setattr(fid, "InceptionV3", type("Failing", (Unloadable,), {"error": error}))
    with pytest.raises(FIDError) as raised:
        InceptionFeatures("cpu", dims=64)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"Inception weights {fid.inception_weights_file()} do not load {shown}; delete the file")


# ---- Fréchet distance ------------------------------------------------------------------------------------------

def test_frechet_distance_takes_statistics_of_any_dtype_as_float64():
    """float32 statistics give exactly the distance of their float64 values, not a float32 or mixed computation,
    whether all four or any one of them comes in float32."""
    rng = np.random.default_rng(3)
    mixing = rng.standard_normal((5, 5))
    stats = [rng.standard_normal(5), mixing @ mixing.T, rng.standard_normal(5), np.eye(5) + 0.1 * mixing @ mixing.T]
    as32 = [array.astype(np.float32) for array in stats]
    expected = frechet_distance(*[array.astype(np.float64) for array in as32])
    assert expected > 1.0
    assert frechet_distance(*as32) == expected
    for index in range(4):  # each statistic alone in float32
        mixed = [as32[i] if i == index else as32[i].astype(np.float64) for i in range(4)]
        assert frechet_distance(*mixed) == expected


@pytest.mark.skipif(np.finfo(np.longdouble).eps >= np.finfo(np.float64).eps, reason="long double is float64 here")
def test_frechet_distance_rounds_extended_precision_means_to_float64():
    """A mean in long double is rounded to float64 first: a difference below float64's resolution counts as 0."""
    near_one = np.ones(1, np.longdouble) + np.longdouble(2) ** -60
    assert near_one[0] != 1 and np.float64(near_one[0]) == 1
    zero = np.zeros((1, 1))
    assert frechet_distance(near_one, zero, np.ones(1), zero) == 0.0
    assert frechet_distance(np.ones(1), zero, near_one, zero) == 0.0


def test_frechet_distance_refuses_each_mismatched_statistic_on_its_own():
    """One wrong shape among four statistics is enough for FIDError, including a mean that would broadcast."""
    good = [np.zeros(3), np.eye(3), np.zeros(3), np.eye(3)]
    assert frechet_distance(*good) == 0.0
    wrong = {0: np.zeros((3, 1)), 1: np.eye(2), 2: np.zeros(1), 3: np.eye(2)}  # mu1's own length sets dims
    for index, bad in wrong.items():
        statistics = [bad if i == index else good[i] for i in range(4)]
        with pytest.raises(FIDError, match="FID statistics do not match"):
            frechet_distance(*statistics)


class FixedFeatures:
    """What fid_from_images uses of InceptionFeatures: `features(batch)` (here the flattened batch) and `device`."""

    device = torch.device("cpu")

    def features(self, images: torch.Tensor) -> np.ndarray:
        return images.flatten(1).double().numpy()


def test_fid_from_images_computes_the_distance_on_the_features_device(monkeypatch):
    """The eigendecompositions run where the Inception features were computed (`features.device`, a GPU in real
    runs), and the value is the distance of the concatenated batches' statistics."""
    seen = []
    real_distance = fid.frechet_distance

    def spy(*args, device=None):
        seen.append(device)
        return real_distance(*args, device=device)

    monkeypatch.setattr(fid, "frechet_distance", spy)
    images = torch.rand(9, 2, 1, 1, generator=torch.Generator().manual_seed(0))
    real = (np.zeros(2), np.eye(2))
    got = fid.fid_from_images(FixedFeatures(), [images[:4], images[4:]], real)
    assert seen == [torch.device("cpu")]
    assert got == real_distance(*activation_statistics(images.flatten(1).double().numpy()), *real)


# ---- preprocessing ---------------------------------------------------------------------------------------------

def test_paper_preprocess_refuses_a_3d_float_tensor_and_a_4d_integer_tensor():
    """Both conditions hold on their own: a single image without its batch axis, and uint8 images (already 8 bits,
    which the [-1, 1] round trip would stretch into nonsense)."""
    assert paper_preprocess(torch.zeros(2, 3, 4, 4)).shape == (2, 3, 4, 4)
    with pytest.raises(FIDError, match=r"float tensor N x C x H x W, got torch.float32 \(3, 4, 4\)"):
        paper_preprocess(torch.zeros(3, 4, 4))
    with pytest.raises(FIDError, match=r"float tensor N x C x H x W, got torch.uint8 \(2, 3, 4, 4\)"):
        paper_preprocess(torch.zeros(2, 3, 4, 4, dtype=torch.uint8))


# ---- real-statistics cache -------------------------------------------------------------------------------------

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


# ---- the GAN task ----------------------------------------------------------------------------------------------

class RecordingInception:
    """Stands in for InceptionFeatures in gan_fid: records the device, dims and batch size it would be built with
    (InceptionFeatures' own defaults for what is not passed), and builds nothing."""

    def __init__(self, *args, **kwargs):
        bound = inspect.signature(InceptionFeatures).bind(*args, **kwargs)
        bound.apply_defaults()
        self.device = torch.device(bound.arguments["device"])
        self.dims, self.batch_size = bound.arguments["dims"], bound.arguments["batch_size"]


def test_inception_features_builds_one_per_device_dims_and_batch_size(torch_home, monkeypatch):
    """A sweep's runs share one Inception per (weights, device, dims, batch size), built with exactly those."""
    monkeypatch.setattr(gan_fid, "InceptionFeatures", RecordingInception)
    monkeypatch.setattr(gan_fid, "_inception", {})
    cpu = torch.device("cpu")
    first = inception_features(cpu, 64, 50)
    assert inception_features(cpu, 64, 50) is first
    wanted = [(cpu, 64, 50), (torch.device("cuda"), 64, 50), (cpu, 192, 50), (cpu, 64, 7)]
    built = [inception_features(*key) for key in wanted]
    assert [(each.device, each.dims, each.batch_size) for each in built] == wanted
    assert len({id(each) for each in built}) == 4


def test_inception_features_fetches_missing_weights_first(tmp_path, monkeypatch):
    """With no weights file, the GAN task goes through the download (which fails offline, saying so)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FIDError, match=r"are not in .* and the download failed \(URLError"):
        inception_features(torch.device("cpu"), 64, 50)


def test_generator_fid_reads_real_statistics_keyed_by_protocol_and_data_fingerprint(torch_home, tmp_path):
    """GeneratorFid's real statistics are the cache file of protocol `paper64`, the image count, the dims, the
    weights and the data's fingerprint; the same cache with another data set's fingerprint is refused."""
    assert gan_fid.FID_PROTOCOL == "paper64"
    settings = FidSettings(dims=64, every=0, curve_samples=2, final_samples=2, real_images=None, batch_size=50)
    images = torch.zeros(4, 3, 64, 64, dtype=torch.uint8)
    sha = inception_features(torch.device("cpu"), 64, 50).weights_sha256
    cache = RealStatisticsCache(tmp_path)
    path = cache.path("paper64", 4, 64, sha)
    mu, sigma = np.arange(64.0), 2 * np.eye(64)
    write_stats_file(path, mu, sigma, protocol="paper64", count="4", dims="64", weights_sha256=sha,
                     fingerprint="cifar10-train-sha256:aaaa")

    meter = GeneratorFid(images, settings, device=torch.device("cpu"), cache_dir=tmp_path,
                         data_fingerprint="cifar10-train-sha256:aaaa")
    np.testing.assert_array_equal(meter.real_stats[0], mu)
    np.testing.assert_array_equal(meter.real_stats[1], sigma)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    with pytest.raises(FIDError, match=r"stale FID statistics .*\(fingerprint <sha256 \w+> != <sha256 \w+>\)"):
        GeneratorFid(images, settings, device=torch.device("cpu"), cache_dir=tmp_path,
                     data_fingerprint="cifar10-train-sha256:bbbb")


def test_fid_cache_dir_is_beside_the_dataset_of_each_source(tmp_path):
    """`<root>/fid-stats` for the real CIFAR-10, `<root>/synthetic/fid-stats` for the synthetic one."""
    assert fid_cache_dir(tmp_path, "real") == tmp_path / "fid-stats"
    assert fid_cache_dir(str(tmp_path), "synthetic") == tmp_path / "synthetic" / "fid-stats"


def test_train_images_fingerprint_covers_the_shape_as_well_as_the_bytes():
    """The same bytes as 2 images of 3x4x4 or 4 of 3x2x4 are different training sets."""
    pixels = torch.arange(96, dtype=torch.uint8)

    def arrays(shape):
        return Cifar10Arrays(pixels.reshape(shape), torch.zeros(shape[0], dtype=torch.int64),
                             pixels.reshape(shape), torch.zeros(shape[0], dtype=torch.int64), ("a",))

    first = train_images_fingerprint(arrays((2, 3, 4, 4)))
    assert first == train_images_fingerprint(arrays((2, 3, 4, 4)))
    assert re.fullmatch(r"cifar10-train-sha256:[0-9a-f]{64}", first)
    assert first != train_images_fingerprint(arrays((4, 3, 2, 4)))
