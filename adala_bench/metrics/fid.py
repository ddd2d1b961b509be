"""FID as PROTOCOL.md §3 computes it: pytorch-fid's InceptionV3 (pool3, TF 2015-12-05 weights) and its statistics.

What differs from pytorch-fid is only speed and bookkeeping: the Fréchet distance's matrix square root trace comes
from eigenvalues instead of scipy's sqrtm, real-set statistics are cached, and generator outputs are mapped to
[0, 1] in memory exactly as the reference's PNG round trip did.

The weights are pytorch-fid's file in torch hub's checkpoint folder (`$TORCH_HOME/hub/checkpoints/`, read when
called). Offline, `write_random_inception_weights` puts a random-weight file of the same architecture there so the
code path can be exercised; every FID from it must carry `weights_label()`, which then says it is not a real FID.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from pytorch_fid import inception as fid_inception
from pytorch_fid.inception import FID_WEIGHTS_URL, InceptionV3
from torch import nn
from torch.nn.functional import adaptive_avg_pool2d

from adala_bench.devices import tf32_off
from adala_bench.files import atomic_write

WEIGHTS_FILE = os.path.basename(FID_WEIGHTS_URL)  # pt_inception-2015-12-05-6726825d.pth
# torch hub names files `<name>-<first hex digits of the sha256>.<ext>`, so the real file's sha256 starts with this.
WEIGHTS_SHA256_PREFIX = re.search(r"-([0-9a-f]{8,})\.", WEIGHTS_FILE).group(1)
REAL_LABEL = "pt_inception-2015-12-05 (real)"
RANDOM_LABEL = "RANDOM WEIGHTS: not a real FID"
DIMS = tuple(InceptionV3.BLOCK_INDEX_BY_DIM)  # 64, 192, 768, 2048


class FIDError(ValueError):
    """Missing weights, bad inputs or stale statistics: something the user fixes, said in one line."""


# ---- weights -------------------------------------------------------------------------------------------------

def inception_weights_file() -> Path:
    """Where pytorch-fid's loader looks for the weights: `<torch hub dir>/checkpoints/`, with TORCH_HOME read now."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE


_failed_downloads: dict[Path, FIDError] = {}


def ensure_inception_weights() -> Path:
    """The weights file, downloaded by pytorch-fid's own loader if it is not there yet.

    Offline, raises FIDError saying which file to fetch from where and which folder to put it in. A failed download
    is tried once per folder and process: a sweep that computes many FIDs does not wait for the network each time.
    """
    path = inception_weights_file()
    if path.is_file():
        return path
    if path in _failed_downloads:
        raise _failed_downloads[path]
    try:
        fid_inception.load_state_dict_from_url(FID_WEIGHTS_URL, progress=True, check_hash=True)
    except (OSError, RuntimeError) as error:  # URLError and timeouts are OSErrors; a bad hash a RuntimeError
        reason = " ".join(str(getattr(error, "reason", error)).split())
        _failed_downloads[path] = FIDError(
            f"Inception weights {WEIGHTS_FILE} are not in {path.parent} and the download failed "
            f"({type(error).__name__}: {reason}); download {FID_WEIGHTS_URL} by hand and put it in {path.parent}, "
            f"or to try the GAN tasks offline write random weights with `adala-data inception --random` "
            f"(their FIDs are flagged as not real)")
        raise _failed_downloads[path] from error
    if not path.is_file():
        raise FIDError(f"the download of {FID_WEIGHTS_URL} did not leave {WEIGHTS_FILE} in {path.parent}; "
                       f"put it there by hand")
    return path


_sha256_memo: dict[tuple[str, int, int], str] = {}


def weights_sha256(path: str | os.PathLike | None = None) -> str:
    """sha256 of the weights file (default: the one pytorch-fid will load), memoised on path, size and mtime."""
    path = Path(path) if path is not None else inception_weights_file()
    if not path.is_file():
        raise FIDError(f"no Inception weights at {path}; run ensure_inception_weights() or put "
                       f"{WEIGHTS_FILE} there")
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _sha256_memo:
        digest = hashlib.sha256()
        with open(path, "rb") as file:
            for chunk in iter(lambda: file.read(1 << 20), b""):
                digest.update(chunk)
        _sha256_memo[key] = digest.hexdigest()
    return _sha256_memo[key]


def weights_are_real(path: str | os.PathLike | None = None) -> bool:
    """Whether the file is pytorch-fid's real weights, by torch hub's naming rule (sha256 starts with 6726825d)."""
    path = Path(path) if path is not None else inception_weights_file()
    return path.is_file() and weights_sha256(path).startswith(WEIGHTS_SHA256_PREFIX)


def weights_label(path: str | os.PathLike | None = None) -> str:
    """The label every FID value must carry: REAL_LABEL, or RANDOM_LABEL for any other weights file."""
    weights_sha256(path)  # a missing file is an error, not "random"
    return REAL_LABEL if weights_are_real(path) else RANDOM_LABEL


def write_random_inception_weights(torch_home: str | os.PathLike, seed: int = 0) -> Path:
    """Save random weights for pytorch-fid's FID-Inception under `<torch_home>/hub/checkpoints/`, without network.

    Convolutions get He-normal weights (BatchNorm stays the identity) so activations keep their scale through the
    network and features are informative; PyTorch's default init would shrink them towards 0 layer by layer.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _fid_inception_architecture()
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    path = Path(torch_home).expanduser() / "hub" / "checkpoints" / WEIGHTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda file: torch.save(model.state_dict(), file))
    return path


def _fid_inception_architecture() -> nn.Module:
    """What pytorch-fid's `fid_inception_v3()` builds before it loads the weights file (loading checks the match)."""
    model = fid_inception._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    model.Mixed_5b = fid_inception.FIDInceptionA(192, pool_features=32)
    model.Mixed_5c = fid_inception.FIDInceptionA(256, pool_features=64)
    model.Mixed_5d = fid_inception.FIDInceptionA(288, pool_features=64)
    model.Mixed_6b = fid_inception.FIDInceptionC(768, channels_7x7=128)
    model.Mixed_6c = fid_inception.FIDInceptionC(768, channels_7x7=160)
    model.Mixed_6d = fid_inception.FIDInceptionC(768, channels_7x7=160)
    model.Mixed_6e = fid_inception.FIDInceptionC(768, channels_7x7=192)
    model.Mixed_7b = fid_inception.FIDInceptionE_1(1280)
    model.Mixed_7c = fid_inception.FIDInceptionE_2(2048)
    return model


# ---- features and statistics ---------------------------------------------------------------------------------

class InceptionFeatures:
    """pytorch-fid's InceptionV3 in eval mode: [0, 1] NCHW images of any size -> float64 features [N, dims].

    Inputs are resized to 299x299 (bilinear) and mapped to [-1, 1] inside the network, as pytorch-fid does. The
    network runs in fp32 with TF32 off whatever the run allows, so cached real statistics serve every profile.
    `weights_label` and `weights_sha256` describe the file that was loaded.
    """

    def __init__(self, device: str | torch.device = "cpu", dims: int = 2048, batch_size: int = 50):
        if dims not in DIMS:
            raise FIDError(f"dims must be one of {', '.join(map(str, DIMS))}, got {dims!r}")
        if not (isinstance(batch_size, int) and batch_size >= 1):
            raise FIDError(f"batch_size must be a positive int, got {batch_size!r}")
        path = ensure_inception_weights()
        self.weights_sha256 = weights_sha256(path)
        self.weights_label = weights_label(path)
        self.device = torch.device(device)
        self.dims = dims
        self.batch_size = batch_size
        try:  # pytorch-fid's own construction, which loads the file from torch hub's folder
            model = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[dims]])
        except (RuntimeError, EOFError, pickle.UnpicklingError) as error:  # truncated file, other architecture
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise FIDError(f"Inception weights {path} do not load ({first_line}); delete the file and put "
                           f"{FID_WEIGHTS_URL} there") from error
        self.model = model.to(self.device).eval()

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> np.ndarray:
        if images.ndim != 4 or images.shape[1] != 3 or not images.is_floating_point():
            raise FIDError(f"images must be a float tensor N x 3 x H x W, got {images.dtype} {tuple(images.shape)}")
        if len(images) and (images.min() < 0 or images.max() > 1):
            raise FIDError(f"images must lie in [0, 1], got [{images.min():.4g}, {images.max():.4g}]; "
                           f"map [-1, 1] images with paper_preprocess")
        out = np.empty((len(images), self.dims))
        # fp32, whatever autocast and TF32 the trainer runs under: the cached real statistics must not depend on it
        with tf32_off(), torch.autocast(self.device.type, enabled=False):
            for start in range(0, len(images), self.batch_size):
                batch = images[start:start + self.batch_size].to(self.device, torch.float32)
                pred = self.model(batch)[0]
                if pred.shape[2:] != (1, 1):  # dims < 2048 are feature maps: average them, as pytorch-fid
                    pred = adaptive_avg_pool2d(pred, output_size=(1, 1))
                out[start:start + len(batch)] = pred.flatten(1).cpu().numpy()
        return out


def activation_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) of features [N, dims], as pytorch-fid: the mean and the unbiased covariance."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise FIDError(f"need features as an N x dims array with N >= 2, got shape {features.shape}")
    return np.mean(features, axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, device: str | torch.device | None = None) -> float:
    """||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 sqrtm(sigma1 sigma2)), as pytorch-fid's calculate_frechet_distance.

    Tr(sqrtm(sigma1 sigma2)) is the sum of the square roots of the eigenvalues of sigma1 sigma2, which are those of
    the symmetric PSD matrix R sigma2 R with R = sigma1^(1/2) (similar matrices: R R sigma2 ~ R sigma2 R). So two
    symmetric eigendecompositions in float64 on `device` (eigh for R, eigvalsh for the product) replace scipy's full
    non-symmetric sqrtm. Eigenvalues that rounding makes slightly negative count as 0, as the real part of their
    root does in pytorch-fid, which keeps sqrtm's real part.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    dims = mu1.shape[0]
    if mu1.shape != (dims,) or mu2.shape != (dims,) or sigma1.shape != (dims, dims) or sigma2.shape != (dims, dims):
        raise FIDError(f"FID statistics do not match: mu {mu1.shape} and {mu2.shape}, "
                       f"sigma {sigma1.shape} and {sigma2.shape}")
    if not all(np.isfinite(array).all() for array in (mu1, mu2, sigma1, sigma2)):
        raise FIDError("FID statistics contain NaN or infinity")
    s1 = torch.as_tensor(sigma1, device=device)
    s2 = torch.as_tensor(sigma2, device=device)
    eigenvalues, eigenvectors = torch.linalg.eigh(s1)
    root = (eigenvectors * eigenvalues.clamp_min(0).sqrt()) @ eigenvectors.T
    product = root @ s2 @ root
    tr_covmean = torch.linalg.eigvalsh((product + product.T) / 2).clamp_min(0).sqrt().sum().item()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def fid_from_images(features: InceptionFeatures, images: Iterable[torch.Tensor],
                    real_stats: tuple[np.ndarray, np.ndarray]) -> float:
    """FID of batches of [0, 1] images against real (mu, sigma); label it with `features.weights_label`."""
    activations = [features.features(batch) for batch in images]
    if not activations:
        raise FIDError("no images to compute an FID of")
    mu, sigma = activation_statistics(np.concatenate(activations))
    return frechet_distance(mu, sigma, *real_stats, device=features.device)


def paper_preprocess(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] images N x C x H x W -> [0, 1], exactly as the reference's PNG round trip, in memory.

    The reference saves each image alone with `save_image(normalize=True)`: clamp to the image's own [min, max],
    (x - min) / max(max - min, 1e-5), then 8 bits as `x*255 + 0.5` clamped and truncated; pytorch-fid reads the
    PNG back and divides by 255. The span is formed in float64 and then rounded to float32, as the Python floats
    torchvision uses are. Bit-exact against save_image on CPU tensors (tests/unit/metrics/test_fid.py); not checked
    on CUDA.
    """
    if images.ndim != 4 or not images.is_floating_point():
        raise FIDError(f"images must be a float tensor N x C x H x W, got {images.dtype} {tuple(images.shape)}")
    images = images.float()
    low = images.amin(dim=(1, 2, 3), keepdim=True)
    high = images.amax(dim=(1, 2, 3), keepdim=True)
    span = (high.double() - low.double()).clamp_min(1e-5).float()
    stretched = (images.clamp(low, high) - low) / span
    pixels = stretched.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8)
    return pixels.float().div(255)


# ---- cached real statistics ----------------------------------------------------------------------------------

class RealStatisticsCache:
    """Real-set (mu, sigma) computed once and kept as .npz files in `directory` (e.g. beside the data root).

    A file is keyed by protocol name, image count, feature dims and the weights' sha256, all in its name and
    stored inside with a fingerprint of the data the caller gives (e.g. the dataset's MD5 manifest). A file whose
    fingerprint or key differs is never recomputed over silently: it raises FIDError asking to delete it.
    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory).expanduser()

    def path(self, protocol: str, count: int, dims: int, weights_sha256: str) -> Path:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", str(protocol)):
            raise FIDError(f"protocol name {protocol!r} must be letters, digits, '_', '.' or '-'")
        if not (isinstance(count, int) and count >= 2):
            raise FIDError(f"image count must be an int >= 2, got {count!r}")
        if dims not in DIMS:
            raise FIDError(f"dims must be one of {', '.join(map(str, DIMS))}, got {dims!r}")
        if not re.fullmatch(r"[0-9a-f]{64}", str(weights_sha256)):
            raise FIDError(f"weights_sha256 must be 64 hex digits, got {weights_sha256!r}")
        return self.directory / f"fid-real-{protocol}-n{count}-d{dims}-w{weights_sha256[:16]}.npz"

    def load_or_compute(self, protocol: str, count: int, dims: int, weights_sha256: str, fingerprint: str,
                        compute: Callable[[], tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        """Cached (mu, sigma) for this key and fingerprint, or `compute()`'s, then written atomically."""
        path = self.path(protocol, count, dims, weights_sha256)
        key = {"protocol": str(protocol), "count": str(count), "dims": str(dims),
               "weights_sha256": str(weights_sha256), "fingerprint": str(fingerprint)}
        if path.exists():
            return self._load(path, key, dims)
        mu, sigma = (np.asarray(array, dtype=np.float64) for array in compute())
        _check_shapes(mu, sigma, dims, f"compute() for {path.name}")
        self.directory.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda file: np.savez(file, mu=mu, sigma=sigma, **{k: np.str_(v) for k, v in key.items()}))
        return mu, sigma

    @staticmethod
    def _load(path: Path, key: dict[str, str], dims: int) -> tuple[np.ndarray, np.ndarray]:
        try:
            with np.load(path, allow_pickle=False) as stored:
                found = {name: str(stored[name]) for name in key}
                mu, sigma = stored["mu"], stored["sigma"]
        except (OSError, KeyError, ValueError) as error:
            raise FIDError(f"unreadable FID statistics {path} ({type(error).__name__}: {error}); "
                           f"delete {path} to recompute them") from error
        changed = [name for name in key if found[name] != key[name]]
        if changed:
            what = ", ".join(f"{name} {_short(found[name])} != {_short(key[name])}" for name in changed)
            raise FIDError(f"stale FID statistics {path} ({what}); delete {path} to recompute them")
        _check_shapes(mu, sigma, dims, str(path))
        return mu, sigma


def _check_shapes(mu: np.ndarray, sigma: np.ndarray, dims: int, source: str) -> None:
    if mu.shape != (dims,) or sigma.shape != (dims, dims):
        raise FIDError(f"{source} gave mu {mu.shape} and sigma {sigma.shape}, expected ({dims},) and "
                       f"({dims}, {dims})")


def _short(value: str) -> str:
    """A value fit for a one-line message: short ones as they are, long or multi-line ones by a digest."""
    if len(value) <= 24 and "\n" not in value:
        return repr(value)
    return f"<sha256 {hashlib.sha256(value.encode()).hexdigest()[:12]}>"
