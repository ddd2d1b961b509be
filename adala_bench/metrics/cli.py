"""`adala-fid`: FID of two image folders or .npz statistics, with the arguments of `python -m pytorch_fid`.

    adala-fid A B [--dims {64,192,768,2048}] [--batch-size N] [--device DEV] [--num-workers N]
    adala-fid A B.npz --save-stats                      write A's statistics (mu, sigma) to B.npz

Folder statistics come from pytorch-fid's own code; only the Fréchet distance is ours (faster, same value).
Prints `FID:  <value>` as pytorch-fid does, and a warning on stderr when the Inception weights are not the real
ones. Errors are one line on stderr, `adala-fid: error: ...`, with exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

import numpy as np
import torch
from pytorch_fid import fid_score
from pytorch_fid.fid_score import IMAGE_EXTENSIONS, compute_statistics_of_path

from adala_bench.cli import OneLineParser
from adala_bench.metrics.fid import DIMS, REAL_LABEL, FIDError, InceptionFeatures, frechet_distance

PROG = "adala-fid"


def _build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog=PROG, description="FID of two image folders or .npz statistics (pytorch-fid's Inception).")
    parser.add_argument("path", nargs=2, metavar="PATH",
                        help="image folders or .npz files with mu and sigma; with --save-stats: folder, then .npz")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--device", default=None, help="cuda, cuda:0 or cpu (default: cuda when available)")
    parser.add_argument("--dims", type=int, default=2048, choices=DIMS, help="Inception features: 2048 is pool3")
    parser.add_argument("--num-workers", type=int, default=None,
                        help="data loading processes (default: min(8, CPUs), as pytorch-fid)")
    parser.add_argument("--save-stats", action="store_true", help="write the first path's statistics to the second")
    return parser


def _count_images(folder: Path) -> int:
    """Images pytorch-fid will read from `folder` (same extensions, no recursion)."""
    return sum(1 for ext in IMAGE_EXTENSIONS for _ in folder.glob(f"*.{ext}"))


def _check_input(path: str) -> int:
    """Images in a folder (at least 2 for a covariance), or 0 for a .npz; FIDError for anything else."""
    if path.endswith(".npz"):
        if not os.path.isfile(path):
            raise FIDError(f"no statistics file {path}")
        return 0
    if not os.path.isdir(path):
        raise FIDError(f"no image folder {path} (give a folder of images or a .npz with mu and sigma)")
    count = _count_images(Path(path))
    if count < 2:
        raise FIDError(f"{path} holds {count} images; an FID needs at least 2 "
                       f"({', '.join(sorted(IMAGE_EXTENSIONS))})")
    return count


def _statistics(path: str, count: int, features: InceptionFeatures | None, args) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) of a folder of `count` images by pytorch-fid's code, or read from a .npz (count 0)."""
    if count == 0:
        try:
            with np.load(path) as stored:
                return stored["mu"][:], stored["sigma"][:]
        except (OSError, KeyError, ValueError) as error:
            raise FIDError(f"{path} is not a statistics file with mu and sigma ({type(error).__name__}: {error})")
    # A batch larger than the folder makes pytorch-fid print a warning on stdout; the features do not change.
    batch_size = min(args.batch_size, count)
    with _bars_only_on_a_terminal():
        return compute_statistics_of_path(path, features.model, batch_size, args.dims, features.device,
                                          _num_workers(args))


@contextlib.contextmanager
def _bars_only_on_a_terminal():
    """pytorch-fid draws a tqdm bar per folder on stderr: kept for a person at a terminal, left out of log files."""
    from tqdm import tqdm

    original = fid_score.tqdm
    fid_score.tqdm = lambda iterable: tqdm(iterable, disable=not sys.stderr.isatty())
    try:
        yield
    finally:
        fid_score.tqdm = original


def _num_workers(args) -> int:
    if args.num_workers is not None:
        return args.num_workers
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 0)
    return min(cpus, 8)


def _checked_inputs(args) -> list[int]:
    """Image counts of the input paths (0 for a .npz), after checking every argument; FIDError if one is wrong."""
    if args.batch_size < 1:
        raise FIDError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.num_workers is not None and args.num_workers < 0:
        raise FIDError(f"--num-workers must be >= 0, got {args.num_workers}")
    first, second = args.path
    if not args.save_stats:
        return [_check_input(first), _check_input(second)]
    if not second.endswith(".npz"):
        raise FIDError(f"--save-stats writes a .npz file; got {second}")
    if os.path.exists(second):
        raise FIDError(f"{second} exists; delete it or choose another file")
    count = _check_input(first)
    if count == 0:
        raise FIDError(f"--save-stats reads an image folder; got {first}")
    return [count]


def _device(name: str | None) -> torch.device:
    try:
        device = torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError as error:
        raise FIDError(f"--device {name!r} is not a device ({error})") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FIDError(f"--device {name} asks for CUDA, which this machine's torch cannot use; try --device cpu")
    return device


def _run(args) -> str:
    counts = _checked_inputs(args)
    device = _device(args.device)
    features = InceptionFeatures(device, dims=args.dims, batch_size=args.batch_size) if any(counts) else None
    if features is not None and features.weights_label != REAL_LABEL:
        print(f"{PROG}: warning: {features.weights_label} (weights sha256 {features.weights_sha256[:12]})",
              file=sys.stderr)
    stats = [_statistics(path, count, features, args) for path, count in zip(args.path, counts)]
    if args.save_stats:
        np.savez_compressed(args.path[1], mu=stats[0][0], sigma=stats[0][1])
        return f"Saved statistics of {args.path[0]} to {args.path[1]}"
    return f"FID:  {frechet_distance(*stats[0], *stats[1], device=device)}"


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        print(_run(args))
    except ValueError as error:  # FIDError included: the user's paths, weights or statistics to fix
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
