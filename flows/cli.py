"""The `synthgen` command line: one subcommand per stage, generated from `STAGES`, plus whole-pipeline helpers.

Every stage command loads and validates params once, before any work starts, and hands the typed
params to its flow; a user error prints one line. Flow modules are imported by name only when their
command runs, so a stage's import closure holds its own flow and no other.
"""
from __future__ import annotations

import importlib
import inspect as signatures
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Callable, Optional

try:
    import typer
except ModuleNotFoundError:  # `pip install synthgen` is the core and the reader only
    raise SystemExit("synthgen: the command line needs the pipeline: pip install 'synthgen[pipeline]'") from None

from synthgen.config import load_params
from flows.user_errors import user_errors
from synthgen.errors import SynthgenError
from synthgen.stages.layout import FOLDERS

app = typer.Typer(
    help="synthgen: train latent diffusion on an image dataset and write synthetic WebDataset shards.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)

Params = Annotated[Path, typer.Option("--params", help="Params file (the only source of configuration).")]
Sets = Annotated[Optional[list[str]], typer.Option("--set", help="Override a param: section.key=value (repeatable).")]
Force = Annotated[bool, typer.Option("--force", help="Replace a folder that is not this stage's output, or another "
                                                     "run's (never a release).")]

FOLDER_HELP = {  # what a folder option holds when a stage reads it
    "prepared": "Prepared dataset (from `prepare`).",
    "autoencoder": "Trained autoencoder (from `train-ae`).",
    "latents": "Latent store (from `encode`).",
    "diffusion": "Trained diffusion model (from `train-ldm`).",
    "filter": "Sampling filter classifier (from `train-filter`); unused when sample.filter.enabled is false.",
    "synthetic": "Synthetic dataset (from `sample`).",
    "classifier": "Feature classifier (from `train-classifier`).",
    "sweep": "Sampler sweep (from `sweep`) to plot; skipped when absent.",
    "releases": "Root of the releases: a folder or an fsspec URL (s3://bucket/releases).",
}


@dataclass(frozen=True)
class Stage:
    """One row of the stage table: a DVC stage, its flow `flows/<name>.py` and its CLI command."""

    command: str
    name: str  # the DVC stage, `flows/<name>.py` and `synthgen/stages/<name>.py`
    inputs: tuple[str, ...]  # folder options it reads (keys of layout.FOLDERS)
    out: str  # the layout it writes
    help: str
    flow: str = ""  # the flow function in flows/<name>.py (default: <name>)
    check_paths: bool = False  # the stage reads data.path, so params check that it exists


STAGES = (
    Stage("prepare", "prepare", (), "prepared",
          "Stage 1: decode, clean, deduplicate and split the source dataset into shards.", check_paths=True),
    Stage("train-ae", "train_autoencoder", ("prepared",), "autoencoder",
          "Stage 2: train the KL autoencoder and compute the latent scale factor."),
    Stage("encode", "encode_latents", ("prepared", "autoencoder"), "latents",
          "Stage 3: encode the train split once into the latent store."),
    Stage("train-ldm", "train_diffusion", ("prepared", "latents", "autoencoder"), "diffusion",
          "Stage 4: train the class-conditional latent diffusion UNet."),
    Stage("train-filter", "train_filter", ("prepared",), "filter",
          "Stage 5: train the classifier that screens every sample (sample.filter); never the evaluator."),
    Stage("sample", "sample", ("diffusion", "autoencoder", "filter"), "synthetic",
          "Stage 6: generate the synthetic dataset into WebDataset shards, each image screened by the filter "
          "(resumes a crashed run).", flow="run_sample"),
    Stage("train-classifier", "train_classifier", ("prepared",), "classifier",
          "Stage 7: train the feature classifier used by every evaluation metric (the judge)."),
    Stage("sweep", "sweep_samplers", ("diffusion", "autoencoder", "classifier", "prepared"), "sweep",
          "Stage 8: quality and time of every sampler at several step counts (evaluate.sweep)."),
    Stage("evaluate", "evaluate", ("prepared", "synthetic", "classifier", "sweep"), "eval",
          "Stage 9: score the synthetic data, apply the quality gate, write the report (exit 2 if rejected)."),
)


def folder_option(name: str, help: str | None = None):
    return typer.Option(FOLDERS[name].DEFAULT, help=help or FOLDER_HELP[name])


def stage_flow(name: str) -> Callable:
    """The flow of stage `name`, imported only now."""
    stage = next(s for s in STAGES if s.name == name)
    return getattr(importlib.import_module(f"flows.{name}"), stage.flow or name)


def stage_command(stage: Stage) -> Callable:
    """The CLI command of `stage`: --params, --set, one option per input folder, and --out."""

    def command(params: Path, set: list[str] | None, force: bool, **folders: str) -> None:
        from synthgen.outputs import replacing

        with user_errors(), replacing(force):
            loaded = load_params(params, set or [], check_paths=stage.check_paths)
            stage_flow(stage.name)(loaded, **folders)

    folders = [(name, folder_option(name)) for name in stage.inputs]
    folders.append(("out", folder_option(stage.out, "Output folder of this stage.")))
    options = [("params", Params, Path("params.yaml")), ("set", Sets, None), ("force", Force, False)]
    options += [(name, str, option) for name, option in folders]
    command.__signature__ = signatures.Signature([
        signatures.Parameter(name, signatures.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
        for name, annotation, default in options])
    command.__annotations__ = {name: annotation for name, annotation, _ in options}
    command.__doc__ = stage.help
    return command


for _stage in STAGES:
    app.command(_stage.command)(stage_command(_stage))


@app.command()
def regenerate(key: str = typer.Argument(..., help="Key of the sample to remake, e.g. synthetic-000000042."),
               dataset: str = folder_option("synthetic", "Synthetic dataset holding the sample."),
               diffusion: str = folder_option("diffusion", "Diffusion model that made it."),
               autoencoder: str = folder_option("autoencoder", "Autoencoder that made it."),
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
        publish: bool = typer.Option(True, help="Publish the evaluated dataset as a release."),
        releases: str = folder_option("releases"),
        force: Force = False) -> None:
    """The whole pipeline: every stage, the quality gate, and a release."""
    from synthgen.outputs import replacing

    with user_errors(), replacing(force):
        loaded = load_params(params, set or [])
        if dvc and set:
            raise SynthgenError("with DVC, change params.yaml or use `dvc exp run -S key=value`; --set needs --no-dvc")
        importlib.import_module("flows.pipeline").pipeline(loaded, use_dvc=dvc, stages=stage, publish=publish,
                                                           releases=releases)


@app.command()
def release(params: Params = Path("params.yaml"),
            date: Optional[str] = typer.Option(None, help="Run date YYYY-MM-DD (default: the scheduled date, or today)."),
            releases: str = folder_option("releases"),
            dvc: bool = typer.Option(True, help="Refresh stale models with `dvc repro` first.")) -> None:
    """Make (or resume) the release of a date: new seed from the date, sample, evaluate, gate, index."""
    with user_errors():
        loaded = load_params(params)  # a bad param stops here, before any work; the flow reuses them
        importlib.import_module("flows.release").release(params_path=str(params), run_date=date, releases=releases,
                                                         use_dvc=dvc, params=loaded)


@app.command()
def serve(params: Params = Path("params.yaml"),
          cron: str = typer.Option("0 2 * * *", help="Cron schedule (UTC) of the release runs.")) -> None:
    """Serve the release flow on a cron schedule from this process (same as the nightly-synthetic deployment)."""
    with user_errors():
        load_params(params, check_paths=False)
        release_flow = importlib.import_module("flows.release").release
        release_flow.serve(name="nightly-synthetic", cron=cron, parameters={"params_path": str(params)})


@app.command()
def inspect(path: str = typer.Argument(FOLDERS["synthetic"].DEFAULT,
                                       help="A dataset folder, a release, or the releases root."),
            verify: bool = typer.Option(True, help="Check every shard's sha256 against the manifest.")) -> None:
    """Summarise a dataset or release: counts, classes, sampling settings, metrics and gate verdict (exit 1 if a
    check fails)."""
    with user_errors():
        from synthgen.inspect import format_summary, passed, summarise

        summary = summarise(path, verify=verify)
        typer.echo(format_summary(summary))
    if not passed(summary):
        raise typer.Exit(1)


@app.command()
def verify(path: str = typer.Argument(FOLDERS["synthetic"].DEFAULT,
                                      help="A dataset folder, a release, or the releases root (every finished release).")
           ) -> None:
    """Check every shard's size and sha256 and the metadata against the manifest, and a release's manifest against
    the index: one line per failure, a summary, exit 1 on any failure."""
    with user_errors():
        from synthgen.verify import format_verification, verify_path

        result = verify_path(path)
        typer.echo(format_verification(result), nl=False)
    if not result.ok:
        raise typer.Exit(1)


@app.command()
def report(folder: str = typer.Argument(FOLDERS["eval"].DEFAULT, help="Evaluation output folder or a release."),
           open_browser: bool = typer.Option(False, "--open", help="Open it in a web browser.")) -> None:
    """Print where the HTML evaluation report is (and open it with --open)."""
    path = FOLDERS["eval"](Path(folder)).report
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
    for name, layout in FOLDERS.items():
        folder = Path(layout.DEFAULT)
        state = "ready" if folder.exists() else "not built yet"
        typer.echo(f"{name:12s} {folder}/  ({state})")


def run_stage_cli(name: str) -> None:
    """Entry for `python -m flows.<stage> [options]`: the same as `synthgen <command> [options]`."""
    app([next(s.command for s in STAGES if s.name == name), *sys.argv[1:]])


def main() -> None:
    app()


if __name__ == "__main__":
    main()
