"""Seconds per Fréchet distance on 2048-d statistics: ours (two symmetric eigendecompositions, torch) against pytorch-fid's (scipy sqrtm).

Both get the same two (mu, sigma) pairs, from 4,096 random features each with different means and covariances,
as FID statistics of two image sets would be. Prints the speed ratio and the relative difference of the values.
Run: .venv/bin/python benchmarks/bench_fid.py [--device cuda]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
from pytorch_fid.fid_score import calculate_frechet_distance

from adala_bench.metrics.fid import activation_statistics, frechet_distance

DIMS, N_FEATURES, REPEATS, GOAL = 2048, 4096, 3, 4.0  # goal: >= 4x faster, equal to 1e-6 relative


def statistics(rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """Two sets of correlated, non-negative features (pool3 features are post-ReLU averages)."""
    pairs = []
    for shift in (0.0, 0.3):
        mixing = np.eye(DIMS) + 0.05 * rng.standard_normal((DIMS, DIMS))
        features = np.abs(rng.standard_normal((N_FEATURES, DIMS)) @ mixing + shift)
        pairs.append(activation_statistics(features))
    return pairs


def best_seconds(function) -> tuple[float, float]:
    """(best wall time of REPEATS calls, the value)."""
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        value = function()
        times.append(time.perf_counter() - start)
    return min(times), value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    device = parser.parse_args().device
    (mu1, sigma1), (mu2, sigma2) = statistics(np.random.default_rng(0))
    frechet_distance(mu1, sigma1, mu2, sigma2, device=device)  # warm-up: first CUDA call, thread pools

    ours_s, ours = best_seconds(lambda: frechet_distance(mu1, sigma1, mu2, sigma2, device=device))
    theirs_s, theirs = best_seconds(lambda: float(calculate_frechet_distance(mu1, sigma1, mu2, sigma2)))
    print(f"fid: frechet_distance {ours_s:.2f} s ({device}) vs pytorch-fid calculate_frechet_distance "
          f"{theirs_s:.2f} s (scipy), {DIMS}-d, best of {REPEATS}, {torch.get_num_threads()} torch threads: "
          f"ratio {theirs_s / ours_s:.2f} (goal >= {GOAL:.0f}); FID {ours:.6f} vs {theirs:.6f}, "
          f"relative difference {abs(ours - theirs) / abs(theirs):.2e} (goal <= 1e-6)")
    return 0 if theirs_s / ours_s >= GOAL and abs(ours - theirs) <= 1e-6 * abs(theirs) else 1


if __name__ == "__main__":
    sys.exit(main())
