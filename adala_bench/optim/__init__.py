"""Optimizers of the benchmark: AdaLA, the reference MSVAG and Fromage, and a registry of all ten."""

from .adala import AdaLA
from .fromage import Fromage
from .msvag import MSVAG
from .common import HparamError
from .registry import build, needs_closure, on_plateau

__all__ = ["AdaLA", "Fromage", "HparamError", "MSVAG", "build", "needs_closure", "on_plateau"]
