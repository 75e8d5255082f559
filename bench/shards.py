"""Shard write throughput: PNG encode alone versus encode + write, one process versus several.

    python bench/shards.py --images 10000 --resolution 64 --workers 1 2

Prints images/s and MB/s, and the PNG encode time per image beside the total time per image,
all measured in this one run.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from synthgen.data.shapes import render_shapes
from synthgen.imaging import encode_image
from synthgen.shards import ShardSample, write_shard


def images(n: int, resolution: int) -> np.ndarray:
    base, _, _ = render_shapes(min(n, 1000), resolution, seed=0)
    return base[np.arange(n) % len(base)]


def write_one_shard(args) -> int:
    folder, index, pixels, per_shard = args
    samples = (
        ShardSample(f"s{index:06d}-{i:05d}", encode_image(p), 0, "c", p.shape[1], p.shape[0], "png")
        for i, p in enumerate(pixels)
    )
    return write_shard(Path(folder) / f"bench-{index:06d}.tar", samples)["bytes"]


def timed_write(pixels: np.ndarray, per_shard: int, workers: int) -> tuple[float, int]:
    chunks = [pixels[i: i + per_shard] for i in range(0, len(pixels), per_shard)]
    with tempfile.TemporaryDirectory() as folder:
        jobs = [(folder, i, c, per_shard) for i, c in enumerate(chunks)]
        start = time.perf_counter()
        if workers == 1:
            written = sum(map(write_one_shard, jobs))
        else:
            with ProcessPoolExecutor(workers) as pool:
                written = sum(pool.map(write_one_shard, jobs))
        return time.perf_counter() - start, written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--per-shard", type=int, default=1000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    pixels = images(args.images, args.resolution)
    start = time.perf_counter()
    for p in pixels:
        encode_image(p)
    encode_s = (time.perf_counter() - start) / len(pixels)
    print(f"{args.images} images of {args.resolution}x{args.resolution}, {args.per_shard} per shard")
    print(f"PNG encode alone:      {encode_s * 1e3:.3f} ms/image  ({1 / encode_s:,.0f} images/s, 1 process)")
    for workers in args.workers:
        seconds, written = timed_write(pixels, args.per_shard, workers)
        per_image = seconds / len(pixels)
        print(f"encode+write, {workers} proc: {per_image * 1e3:.3f} ms/image  "
              f"({len(pixels) / seconds:,.0f} images/s, {written / seconds / 1e6:.1f} MB/s; "
              f"encode is {encode_s / per_image / workers:.0%} of per-process time)")


if __name__ == "__main__":
    main()
