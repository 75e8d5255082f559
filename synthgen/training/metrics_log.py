"""Per-step training metrics as a CSV file that `dvc plots` can draw (x = step).

Rows are kept in memory and the whole file is rewritten atomically on `flush` (at every checkpoint,
at the end, and after a row when FLUSH_SECONDS have passed), so it never holds a half-written row. On resume, rows after the checkpoint's
step are dropped: the resumed run writes them again.
"""
from __future__ import annotations

import csv
import io
import time
from pathlib import Path

from synthgen.atomic import atomic_write_bytes
from synthgen.errors import SynthgenError

FLUSH_SECONDS = 10.0  # a live run's CSV lags by at most this long


class MetricsLog:
    """Rows of {column: number} with a fixed set of columns, the first being `step`."""

    def __init__(self, path: str | Path, resume_step: int = 0):
        self.path = Path(path)
        self.columns: list[str] | None = None
        self.rows: list[dict[str, str]] = []
        self.flushed_at = time.monotonic()
        if resume_step > 0 and self.path.is_file():
            with self.path.open(newline="") as f:
                reader = csv.DictReader(f)
                self.columns = list(reader.fieldnames or []) or None
                self.rows = [r for r in reader if int(r["step"]) <= resume_step]

    def append(self, row: dict[str, float]) -> None:
        if self.columns is None:
            self.columns = ["step", *sorted(k for k in row if k != "step")]
        if set(row) != set(self.columns):
            raise SynthgenError(
                f"{self.path}: metrics {sorted(row)} differ from the columns {self.columns} already written; "
                "an objective must log the same keys at every step"
            )
        self.rows.append({k: format_value(v) for k, v in row.items()})
        if time.monotonic() - self.flushed_at >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self.columns is None:
            return
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_bytes(self.path, buf.getvalue().encode())
        self.flushed_at = time.monotonic()


def format_value(value: float) -> str:
    return str(int(value)) if isinstance(value, int) else f"{value:.6g}"
