"""Wall time of each model stage, run through the core package alone (no Prefect, no DVC).

It runs prepare -> train_autoencoder -> encode_latents -> train_diffusion -> train_classifier ->
sweep_samplers for one params file into `--out`, with the same core functions the stage flows call,
and prints seconds per stage. It is how the pipeline runs on a GPU box that has torch but not the
orchestration packages, and how diffusion variants are compared: `--reuse` takes the data, autoencoder,
latents and classifier of an earlier run, so only train_diffusion and the sweep run again.

    .venv/bin/python bench/model_stages.py --out /tmp/run --set diffusion.train.steps=200
    python bench/model_stages.py --params configs/gpu.yaml --out /tmp/gpu --set data.num_images=5000
    python bench/model_stages.py --reuse /tmp/run --out /tmp/lr2 --set diffusion.train.lr=2e-3
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from synthgen.stages.encode_latents import encode_latents
from synthgen.stages.train_autoencoder import train_autoencoder
from synthgen.config import load_params, write_resolved
from synthgen.config.loader import resolved
from synthgen.stages.prepare import prepare_dataset
from synthgen.stages.train_classifier import train_classifier
from synthgen.stages.sweep_samplers import run_sweep
from synthgen.stages.train_diffusion import train_diffusion
from synthgen.shards import read_arrays

SHARED = ("prepared", "autoencoder", "latents", "classifier")  # what --reuse links from an earlier run


def check_reusable(params, reuse: Path) -> None:
    """Refuse a --reuse whose shared stages ran with other data, autoencoder or classifier params."""
    base, now = json.loads((reuse / "params.json").read_text()), resolved(params)
    evaluate_keys = ("classifier", "classifier_train", "augment", "cas", "seed")
    changed = [key for key in ("data", "autoencoder") if base[key] != now[key]]
    changed += [f"evaluate.{key}" for key in evaluate_keys if base["evaluate"][key] != now["evaluate"][key]]
    if changed:
        raise SystemExit(f"--reuse {reuse}: it ran with other {', '.join(changed)} params; run a new base instead")


def run(params, out: Path, reuse: Path | None) -> dict[str, float]:
    """Run every stage not taken from `reuse`; returns seconds per stage."""
    dirs = {name: out / name for name in (*SHARED, "diffusion", "sweep")}
    if reuse is not None:
        for name in SHARED:
            dirs[name].symlink_to((reuse / name).resolve(), target_is_directory=True)
    seconds: dict[str, float] = {}

    def timed(name: str, fn, *args, **kwargs):
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        seconds[name] = round(time.perf_counter() - start, 2)
        print(f"{name}: {seconds[name]:.1f} s", flush=True)
        return result

    if reuse is None:
        timed("prepare", prepare_dataset, params.data, dirs["prepared"])
    class_names = json.loads((dirs["prepared"] / "classes.json").read_text())
    train = read_arrays(dirs["prepared"] / "train")
    val = read_arrays(dirs["prepared"] / "val")
    if reuse is None:
        ae = params.autoencoder
        timed("train_autoencoder", train_autoencoder, ae, train[0], train[1], val[0], dirs["autoencoder"])
        timed("encode_latents", encode_latents, dirs["autoencoder"], train[0], train[1], dirs["latents"],
              batch_size=ae.eval_batch_size, device=ae.train.device)
        timed("train_classifier", train_classifier, params.evaluate, train[0], train[1], val[0], val[1],
              class_names, dirs["classifier"])
    timed("train_diffusion", train_diffusion, params.diffusion, dirs["latents"], dirs["autoencoder"], class_names,
          dirs["diffusion"])
    timed("sweep_samplers", run_sweep, params.evaluate, params.sample.sampler, dirs["diffusion"], dirs["autoencoder"],
          dirs["classifier"], dirs["prepared"], dirs["sweep"], device=params.sample.device,
          threads=params.evaluate.sweep.cpu_threads, bf16=params.sample.bf16)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", required=True, help="folder for every stage's output (must not exist)")
    parser.add_argument("--reuse", default=None, help="earlier --out whose data, autoencoder and classifier to use")
    args = parser.parse_args()

    params = load_params(args.params, args.overrides, check_paths=False)
    if args.reuse:
        check_reusable(params, Path(args.reuse))
    out = Path(args.out)
    out.mkdir(parents=True)
    write_resolved(params, out)
    seconds = run(params, out, Path(args.reuse) if args.reuse else None)
    sweep = (out / "sweep" / "sweep.csv").read_text()
    (out / "seconds.json").write_text(json.dumps(seconds, indent=2) + "\n")
    print(json.dumps({"seconds": seconds, "cpus": os.cpu_count()}))
    print(sweep, end="")


if __name__ == "__main__":
    main()
