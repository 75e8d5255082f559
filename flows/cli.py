"""The `synthgen` command line: one subcommand per stage, plus whole-pipeline helpers.

Every stage command validates params before any work starts; a user error prints one line.
"""
from __future__ import annotations

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


def validated(params: Path, sets: list[str] | None) -> list[str]:
    """Validate params up front, so that a bad value stops the run before any work or output."""
    overrides = list(sets or [])
    load_params(params, overrides)
    return overrides


@app.command()
def prepare(params: Params = Path("params.yaml"), set: Sets = None,
            out: str = Folder(paths.PREPARED, "Output folder for train/val shards.")) -> None:
    """Stage 1: decode, clean, deduplicate and split the source dataset into shards."""
    with user_errors():
        overrides = validated(params, set)
        from flows.prepare import prepare as flow

        flow(params_path=str(params), overrides=overrides, out=out)


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
