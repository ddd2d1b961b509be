"""`adala-data`: fetch, create and verify the datasets the benchmark reads.

    adala-data cifar10 --root DIR                       download the official CIFAR-10 and verify it
    adala-data synthetic-cifar10 --root DIR [--n-train N --n-test N --seed S]
    adala-data ptb --root DIR                           download Mikolov's PTB (simple-examples.tgz) and verify it
    adala-data synthetic-ptb --root DIR [--n-train N --n-valid N --n-test N --vocab-size V --seed S]
    adala-data verify cifar10|ptb [--root DIR] [--source real|synthetic]   (--root: data/, as the runs' default)
    adala-data inception [--random] [--torch-home DIR]  pytorch-fid's Inception weights where pytorch-fid looks

Each prints the dataset directory (verify adds what it found). Errors are one line on stderr, `adala-data: error: ...`, with exit code 2.
"""

from __future__ import annotations

import argparse
import sys

from adala_bench.cli import OneLineParser
from adala_bench.data import ptb
from adala_bench.data.cifar10 import dataset_dir, download_cifar10, load_cifar10, write_synthetic_cifar10
from adala_bench.settings import SOURCES

PROG = "adala-data"
DEFAULT_ROOT = "data"  # conf/config.yaml's data.root


def _build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog=PROG, description="Fetch, create and verify the datasets adala-bench reads.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    real = commands.add_parser("cifar10", help="download the official CIFAR-10 under --root and verify its MD5s")
    real.add_argument("--root", required=True, help="directory that receives cifar-10-batches-py/")
    real.set_defaults(run=_download_cifar10)

    synthetic = commands.add_parser("synthetic-cifar10",
                                    help="write a small learnable stand-in in the same format under ROOT/synthetic/")
    synthetic.add_argument("--root", required=True)
    synthetic.add_argument("--n-train", type=int, default=2000)
    synthetic.add_argument("--n-test", type=int, default=500)
    synthetic.add_argument("--seed", type=int, default=0)
    synthetic.set_defaults(run=_write_synthetic_cifar10)

    real_ptb = commands.add_parser("ptb", help="download Mikolov's Penn TreeBank under --root and verify its MD5s")
    real_ptb.add_argument("--root", required=True, help="directory that receives ptb/")
    real_ptb.set_defaults(run=_download_ptb)

    synthetic_ptb = commands.add_parser(
        "synthetic-ptb", help="write a small learnable stand-in in the same format under ROOT/synthetic/")
    synthetic_ptb.add_argument("--root", required=True)
    synthetic_ptb.add_argument("--n-train", type=int, default=20_000, help="train tokens, <eos> included")
    synthetic_ptb.add_argument("--n-valid", type=int, default=2_000)
    synthetic_ptb.add_argument("--n-test", type=int, default=2_000)
    synthetic_ptb.add_argument("--vocab-size", type=int, default=200, help="words, <eos> included")
    synthetic_ptb.add_argument("--seed", type=int, default=0)
    synthetic_ptb.set_defaults(run=_write_synthetic_ptb)

    verify = commands.add_parser("verify", help="check a dataset's files and checksums")
    datasets = verify.add_subparsers(dest="dataset", required=True, metavar="DATASET")
    check_cifar10 = datasets.add_parser("cifar10", help="CIFAR-10 under --root")
    check_cifar10.add_argument("--root", default=DEFAULT_ROOT, help=f"the data root (default: {DEFAULT_ROOT}, as data.root)")
    check_cifar10.add_argument("--source", choices=SOURCES, default="real")
    check_cifar10.set_defaults(run=_verify_cifar10)
    check_ptb = datasets.add_parser("ptb", help="Penn TreeBank under --root")
    check_ptb.add_argument("--root", default=DEFAULT_ROOT, help=f"the data root (default: {DEFAULT_ROOT}, as data.root)")
    check_ptb.add_argument("--source", choices=SOURCES, default="real")
    check_ptb.set_defaults(run=_verify_ptb)

    inception = commands.add_parser(
        "inception", help="put pytorch-fid's Inception weights where pytorch-fid looks ($TORCH_HOME/hub/checkpoints/): "
                          "downloaded, or with --random a random-weights file of the same architecture, offline, "
                          "whose FIDs every table and figure flags as not real")
    inception.add_argument("--random", action="store_true",
                           help="write random weights (offline; for trying the GAN path, never for real FIDs)")
    inception.add_argument("--torch-home", default=None, metavar="DIR",
                           help="the TORCH_HOME to put them in (default: $TORCH_HOME, else torch's own default); "
                                "runs must see the same TORCH_HOME")
    inception.set_defaults(run=_inception)
    return parser


def _download_cifar10(args: argparse.Namespace) -> str:
    return str(download_cifar10(args.root))


def _write_synthetic_cifar10(args: argparse.Namespace) -> str:
    return str(write_synthetic_cifar10(args.root, n_train=args.n_train, n_test=args.n_test, seed=args.seed))


def _verify_cifar10(args: argparse.Namespace) -> str:
    data = load_cifar10(args.root, source=args.source)  # checks MD5s, then that every batch parses
    return (f"{dataset_dir(args.root, args.source)}: ok, {len(data.train_labels)} train and "
            f"{len(data.test_labels)} test images")


def _download_ptb(args: argparse.Namespace) -> str:
    return str(ptb.download_ptb(args.root))


def _write_synthetic_ptb(args: argparse.Namespace) -> str:
    return str(ptb.write_synthetic_ptb(args.root, n_train_tokens=args.n_train, n_valid_tokens=args.n_valid,
                                       n_test_tokens=args.n_test, vocab_size=args.vocab_size, seed=args.seed))


def _verify_ptb(args: argparse.Namespace) -> str:
    corpus = ptb.load_ptb(args.root, source=args.source)  # checks MD5s, then that valid and test fit the vocabulary
    return (f"{ptb.dataset_dir(args.root, args.source)}: ok, {len(corpus.train)} train, {len(corpus.valid)} valid "
            f"and {len(corpus.test)} test tokens, {len(corpus.vocab)} words")


def _inception(args: argparse.Namespace) -> str:
    import os

    from adala_bench.metrics import fid

    if args.torch_home is not None:
        os.environ["TORCH_HOME"] = args.torch_home  # where torch.hub, and so pytorch-fid, looks
    path = fid.inception_weights_file()
    if not args.random:
        return f"{fid.ensure_inception_weights()}: {fid.weights_label()}"
    if path.is_file() and fid.weights_are_real(path):
        raise ValueError(f"{path} holds pytorch-fid's real weights; not replacing them with random ones")
    fid.write_random_inception_weights(path.parents[2])
    return (f"{path}: {fid.weights_label(path)} (random Inception weights for trying the GAN tasks offline; "
            f"runs see them with TORCH_HOME={path.parents[2]})")


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        print(args.run(args))
    except ValueError as error:  # DataError included: bad data or bad sizes, both the user's to fix
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
