"""The `synthgen` command line: one subcommand per stage, plus whole-pipeline helpers.

Every stage command validates params before any work starts; a user error prints one line.
"""
from __future__ import annotations

import importlib
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer

from synthgen import paths
from synthgen.config import load_params
from synthgen.errors import SynthgenError

app = typer.Typer(
    help="synthgen: train latent diffusion on an image dataset and write synthetic WebDataset shards.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)

Params = Annotated[Path, typer.Option("--params", help="Params file (the only source of configuration).")]
Sets = Annotated[Optional[list[str]], typer.Option("--set", help="Override a param: section.key=value (repeatable).")]


def Folder(default: str, help: str):  # noqa: N802 - reads like a type in signatures
    return typer.Option(default, help=help)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn user-fixable errors into one line on stderr and exit code 2."""
    try:
        yield
    except SynthgenError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None


def validated(params: Path, sets: list[str] | None, check_paths: bool = False) -> list[str]:
    """Validate params up front, so that a bad value stops the run before any work or output."""
    overrides = list(sets or [])
    load_params(params, overrides, check_paths=check_paths)
    return overrides


def run_flow(module: str, name: str, params: Path, sets: list[str] | None, check_paths: bool = False, **kwargs):
    """Validate params, then run flow `name` of `flows.<module>`; user errors become one line."""
    with user_errors():
        overrides = validated(params, sets, check_paths)
        flow = getattr(importlib.import_module(f"flows.{module}"), name)
        return flow(params_path=str(params), overrides=overrides, **kwargs)


@app.command()
def prepare(params: Params = Path("params.yaml"), set: Sets = None,
            out: str = Folder(paths.PREPARED, "Output folder for train/val shards.")) -> None:
    """Stage 1: decode, clean, deduplicate and split the source dataset into shards."""
    run_flow("prepare", "prepare", params, set, check_paths=True, out=out)


@app.command("train-ae")
def train_ae(params: Params = Path("params.yaml"), set: Sets = None,
             prepared: str = Folder(paths.PREPARED, "Prepared dataset (from `prepare`)."),
             out: str = Folder(paths.AUTOENCODER, "Output folder for the autoencoder.")) -> None:
    """Stage 2: train the KL autoencoder and compute the latent scale factor."""
    run_flow("train_autoencoder", "train_autoencoder", params, set, prepared=prepared, out=out)


@app.command()
def encode(params: Params = Path("params.yaml"), set: Sets = None,
           prepared: str = Folder(paths.PREPARED, "Prepared dataset (from `prepare`)."),
           autoencoder: str = Folder(paths.AUTOENCODER, "Trained autoencoder (from `train-ae`)."),
           out: str = Folder(paths.LATENTS, "Output folder for the latent store.")) -> None:
    """Stage 3: encode the train split once into the latent store."""
    run_flow("encode_latents", "encode_latents", params, set, prepared=prepared, autoencoder=autoencoder, out=out)


@app.command("train-ldm")
def train_ldm(params: Params = Path("params.yaml"), set: Sets = None,
              prepared: str = Folder(paths.PREPARED, "Prepared dataset (for its class names)."),
              latents: str = Folder(paths.LATENTS, "Latent store (from `encode`)."),
              autoencoder: str = Folder(paths.AUTOENCODER, "Trained autoencoder (from `train-ae`)."),
              out: str = Folder(paths.DIFFUSION, "Output folder for the diffusion model.")) -> None:
    """Stage 4: train the class-conditional latent diffusion UNet."""
    run_flow("train_diffusion", "train_diffusion", params, set, prepared=prepared, latents=latents,
             autoencoder=autoencoder, out=out)


@app.command()
def sample(params: Params = Path("params.yaml"), set: Sets = None,
           diffusion: str = Folder(paths.DIFFUSION, "Trained diffusion model (from `train-ldm`)."),
           autoencoder: str = Folder(paths.AUTOENCODER, "Trained autoencoder (from `train-ae`)."),
           out: str = Folder(paths.SYNTHETIC, "Output folder for the synthetic shards.")) -> None:
    """Stage 5: generate the synthetic dataset into WebDataset shards (resumes a crashed run)."""
    with user_errors():
        overrides = validated(params, set)
        from flows.sample import run_sample

        run_sample(str(params), overrides, diffusion=diffusion, autoencoder=autoencoder, out=out)


@app.command("train-classifier")
def train_classifier(params: Params = Path("params.yaml"), set: Sets = None,
                     prepared: str = Folder(paths.PREPARED, "Prepared dataset (from `prepare`)."),
                     out: str = Folder(paths.CLASSIFIER, "Output folder for the feature classifier.")) -> None:
    """Stage 6: train the feature classifier used by every evaluation metric."""
    run_flow("train_classifier", "train_classifier", params, set, prepared=prepared, out=out)


@app.command()
def sweep(params: Params = Path("params.yaml"), set: Sets = None,
          diffusion: str = Folder(paths.DIFFUSION, "Trained diffusion model (from `train-ldm`)."),
          autoencoder: str = Folder(paths.AUTOENCODER, "Trained autoencoder (from `train-ae`)."),
          classifier: str = Folder(paths.CLASSIFIER, "Feature classifier (from `train-classifier`)."),
          prepared: str = Folder(paths.PREPARED, "Prepared dataset (its val split is the FD reference)."),
          out: str = Folder(paths.SWEEP, "Output folder for sweep.csv.")) -> None:
    """Stage 7: quality and time of every sampler at several step counts (evaluate.sweep)."""
    run_flow("sweep_samplers", "sweep_samplers", params, set, diffusion=diffusion, autoencoder=autoencoder,
             classifier=classifier, prepared=prepared, out=out)


@app.command()
def evaluate(params: Params = Path("params.yaml"), set: Sets = None,
             prepared: str = Folder(paths.PREPARED, "Prepared dataset (the real data)."),
             synthetic: str = Folder(paths.SYNTHETIC, "Synthetic dataset to evaluate."),
             classifier: str = Folder(paths.CLASSIFIER, "Feature classifier (from `train-classifier`)."),
             sweep: str = Folder(paths.SWEEP, "Sampler sweep (from `sweep`) to plot; skipped when absent."),
             out: str = Folder(paths.EVAL, "Output folder for metrics, plots and the report.")) -> None:
    """Stage 8: score the synthetic data, apply the quality gate, write the report (exit 2 if rejected)."""
    run_flow("evaluate", "evaluate", params, set, prepared=prepared, synthetic=synthetic,
             classifier=classifier, sweep=sweep, out=out)


@app.command()
def regenerate(key: str = typer.Argument(..., help="Key of the sample to remake, e.g. synthetic-000000042."),
               dataset: str = Folder(paths.SYNTHETIC, "Synthetic dataset holding the sample."),
               diffusion: str = Folder(paths.DIFFUSION, "Diffusion model that made it."),
               autoencoder: str = Folder(paths.AUTOENCODER, "Autoencoder that made it."),
               save: Optional[Path] = typer.Option(None, help="Write the remade image here.")) -> None:
    """Remake one sample from its metadata and the checkpoints; check its sha256 against the stored one."""
    with user_errors():
        from synthgen.generate.regenerate import describe, regenerate as remake

        result = remake(dataset, key, diffusion, autoencoder)
        if save is not None:
            save.write_bytes(result.image)
        typer.echo(describe(result))
        if not result.matches:
            raise typer.Exit(1)


@app.command()
def run(params: Params = Path("params.yaml"), set: Sets = None,
        dvc: bool = typer.Option(True, help="Run through `dvc repro` (skips unchanged stages); --no-dvc runs flows directly."),
        stage: Optional[list[str]] = typer.Option(None, help="Run only these stages (repeatable)."),
        publish: bool = typer.Option(True, help="Publish the evaluated dataset as a release.")) -> None:
    """The whole pipeline: every stage, the quality gate, and a release."""
    run_flow("pipeline", "pipeline", params, set, check_paths=True, use_dvc=dvc, stages=stage, publish=publish)


@app.command()
def release(params: Params = Path("params.yaml"),
            date: Optional[str] = typer.Option(None, help="Run date YYYY-MM-DD (default: the scheduled date, or today)."),
            releases: str = Folder(paths.RELEASES, "Root folder of the releases."),
            dvc: bool = typer.Option(True, help="Refresh stale models with `dvc repro` first.")) -> None:
    """Make (or resume) the release of a date: new seed from the date, sample, evaluate, gate, index."""
    run_flow("release", "release", params, None, run_date=date, releases=releases, use_dvc=dvc)


@app.command()
def serve(params: Params = Path("params.yaml"),
          cron: str = typer.Option("0 2 * * *", help="Cron schedule (UTC) of the release runs.")) -> None:
    """Serve the release flow on a cron schedule from this process (same as the nightly-synthetic deployment)."""
    with user_errors():
        validated(params, None)
        from flows.release import release as release_flow

        release_flow.serve(name="nightly-synthetic", cron=cron, parameters={"params_path": str(params)})


@app.command()
def inspect(path: str = typer.Argument(paths.SYNTHETIC, help="A dataset folder, a release, or the releases root."),
            verify: bool = typer.Option(True, help="Check every shard's sha256 against the manifest.")) -> None:
    """Summarise a dataset or release: counts, classes, sampling settings, metrics and gate verdict."""
    with user_errors():
        from synthgen.inspect import format_summary, summarise

        typer.echo(format_summary(summarise(path, verify=verify)))


@app.command()
def report(folder: str = typer.Argument(paths.EVAL, help="Evaluation output folder or a release."),
           open_browser: bool = typer.Option(False, "--open", help="Open it in a web browser.")) -> None:
    """Print where the HTML evaluation report is (and open it with --open)."""
    path = Path(folder) / "report.html"
    if not path.is_file():
        typer.echo(f"error: no report at {path}; run `synthgen evaluate` first", err=True)
        raise typer.Exit(2)
    typer.echo(str(path.resolve()))
    if open_browser:
        import webbrowser

        webbrowser.open(path.resolve().as_uri())


@app.command()
def where() -> None:
    """Print where the pipeline's outputs are."""
    for name in ("PREPARED", "AUTOENCODER", "LATENTS", "DIFFUSION", "SYNTHETIC", "CLASSIFIER", "EVAL", "RELEASES"):
        folder = Path(getattr(paths, name))
        state = "ready" if folder.exists() else "not built yet"
        typer.echo(f"{name.lower():12s} {folder}/  ({state})")


def run_stage_cli(command: str) -> None:
    """Entry for `python -m flows.<stage> [options]`: the same as `synthgen <command> [options]`."""
    app([command, *sys.argv[1:]])


def main() -> None:
    app()


if __name__ == "__main__":
    main()
