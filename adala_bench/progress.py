"""What a person watching a run sees: one log line per finished epoch (trackers.py feeds TensorBoard, MLflow, W&B).

    cifar10_resnet34 adala seed=0: epoch 36 (37/200 done), train_loss 0.1432, test_acc 92.71, lr 0.001, 41.3 s/epoch, ETA 1h52m

Epochs are numbered from 0 everywhere (metrics.jsonl, figures, lr milestones, these lines); "37/200 done" counts
them. Nothing reads these lines back: tools read the run store (records.py).
"""

from __future__ import annotations

import logging
import time

from adala_bench.catalog import FAMILIES

log = logging.getLogger("adala_bench.runner")
LOSS_KEYS = ("train_loss", "d_loss", "g_loss")


class EpochLog:
    """One log line per finished epoch: the epoch, how many are done, the training loss, the task's test metric, lr,
    the epoch's seconds (evaluation included) and the time left at that pace."""

    def __init__(self, name: str, family: str, epochs: int, first_epoch: int):
        metric = FAMILIES[family].metric
        self.metrics = (metric, f"{metric}_curve")
        self.name, self.epochs, self.first_epoch = name, epochs, first_epoch
        self.started = self.last = time.perf_counter()

    def epoch_done(self, row: dict) -> None:
        now = time.perf_counter()
        done = row["epoch"] + 1
        seconds, self.last = now - self.last, now
        pace = (now - self.started) / (done - self.first_epoch)
        fields = [f"epoch {row['epoch']} ({done}/{self.epochs} done)"]
        fields += [f"{key} {row[key]:.4g}" for key in (*LOSS_KEYS, *self.metrics) if isinstance(row.get(key), float)]
        fields += [f"lr {row['lr']:.3g}", f"{seconds:.1f} s/epoch", f"ETA {duration(pace * (self.epochs - done))}"]
        log.info("%s: %s", self.name, ", ".join(fields))


def duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"
