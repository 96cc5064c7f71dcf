"""Per-epoch training curves of a run: ``curves.csv`` in the run folder, always, and TensorBoard events
under ``tensorboard/`` when the optional ``tensorboard`` package is installed (``tensorboard --logdir
output``). Columns: ``epoch`` (1-based), ``lr`` (at the epoch's end), the epoch's mean of every logged
training term (``loss``, ``acc`` in percent, the regularizers' terms), ``val`` (the validation metric
when ``TEST.FINAL_MODEL best_val`` validates every epoch; empty otherwise) and ``time_s`` (seconds since
the process started training). A resumed run keeps the rows of the epochs it resumed past and rewrites
the rest, so the file always matches the checkpoints beside it.
"""
import contextlib
import csv
import io
import os

from ..calibration.fileio import atomic_write_bytes

FILE = "curves.csv"


def read_curves(folder):
    """The rows of ``folder/curves.csv`` as dicts of strings (``[]`` when there is none)."""
    path = os.path.join(folder, FILE)
    if not os.path.isfile(path):
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


class Curves:
    """``add(row)`` appends one epoch's row and rewrites ``curves.csv`` atomically (rank 0 only)."""

    def __init__(self, folder, start_epoch):
        self.path = os.path.join(folder, FILE)
        self.rows = [r for r in read_curves(folder) if int(r["epoch"]) <= start_epoch]
        self.writer = None
        with contextlib.suppress(ImportError):  # the optional extra: pip install tensorboard
            import tensorboard  # noqa: F401  (torch's SummaryWriter needs it)
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(os.path.join(folder, "tensorboard"), purge_step=start_epoch + 1)

    def add(self, row):
        self.rows.append({k: "" if v is None else v for k, v in row.items()})
        columns = list(dict.fromkeys(k for r in self.rows for k in r))
        buf = io.StringIO()
        out = csv.DictWriter(buf, fieldnames=columns, restval="", lineterminator="\n")
        out.writeheader()
        out.writerows(self.rows)
        atomic_write_bytes(buf.getvalue().encode(), self.path)
        if self.writer is not None:
            for key, value in row.items():
                if key != "epoch" and isinstance(value, (int, float)):
                    self.writer.add_scalar(f"train/{key}", value, row["epoch"])
            self.writer.flush()

    def close(self):
        if self.writer is not None:
            self.writer.close()
