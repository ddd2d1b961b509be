"""`adala-data`: fetch, create and verify the datasets the benchmark reads.

    adala-data cifar10 --root DIR                       download the official CIFAR-10 and verify it
    adala-data synthetic-cifar10 --root DIR [--n-train N --n-test N --seed S]
    adala-data verify cifar10 --root DIR [--source real|synthetic]

Each prints the dataset directory (verify adds what it found). Errors are one line on stderr, `adala-data: error: ...`, with exit code 2.
"""

from __future__ import annotations

import argparse
import sys

from adala_bench.data.cifar10 import dataset_dir, download_cifar10, load_cifar10, write_synthetic_cifar10

PROG = "adala-data"


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors, the same shape as the data errors below."""

    def error(self, message: str):
        self.exit(2, f"{PROG}: error: {message}\n")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Fetch, create and verify the datasets adala-bench reads.")
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

    verify = commands.add_parser("verify", help="check a dataset's files and checksums")
    datasets = verify.add_subparsers(dest="dataset", required=True, metavar="DATASET")
    check_cifar10 = datasets.add_parser("cifar10", help="CIFAR-10 under --root")
    check_cifar10.add_argument("--root", required=True)
    check_cifar10.add_argument("--source", choices=("real", "synthetic"), default="real")
    check_cifar10.set_defaults(run=_verify_cifar10)
    return parser


def _download_cifar10(args: argparse.Namespace) -> str:
    return str(download_cifar10(args.root))


def _write_synthetic_cifar10(args: argparse.Namespace) -> str:
    return str(write_synthetic_cifar10(args.root, n_train=args.n_train, n_test=args.n_test, seed=args.seed))


def _verify_cifar10(args: argparse.Namespace) -> str:
    data = load_cifar10(args.root, source=args.source)  # checks MD5s, then that every batch parses
    return (f"{dataset_dir(args.root, args.source)}: ok, {len(data.train_labels)} train and "
            f"{len(data.test_labels)} test images")


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
