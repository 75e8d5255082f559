"""The release job's core: sample a release with its own seed, evaluate, refill and gate it, record the verdict.

Each release is a folder `releases/<release-id>/` holding the dataset and its evaluation (an
`EvalLayout`). A crashed run resumes its own release; a lock stops two runs working on the same
one. With `evaluate.refill.enabled`, the samples that evaluation flags as near-duplicates of training
images are replaced (new seeds, same labels) and the release is evaluated again, for up to
`max_rounds` rounds; samples of the wrong class are the sample filter's to replace (`sample.filter`),
while sampling. A rejection is a verdict, not an error: the caller decides what a rejected release
means for its run.

A releases root on an object store (`s3://bucket/releases`) is served from a local working root
named after its URL (`working_root`): the release is made there, as above, then uploaded in
commit order and its row written to the remote index last. A rerun after a crash mid-upload finds
the release finished locally and uploads only what is missing.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from synthgen.config import params_hash, write_resolved
from synthgen.config.params import Params
from synthgen.generate.models import load_models
from synthgen.generate.shard_sampler import screen_for
from synthgen.generate.refill import refill_dataset, refill_progress, select_flagged
from synthgen.outputs import RELEASE, claim
from synthgen.releases import fail_release, finish_release, release_lock, start_release
from synthgen.releases.index import (
    FINAL, ReleaseEntry, ReleaseFinishedError, gate_verdict, get_release, record_release,
)
from synthgen.releases.publish import annotate_dataset, freeze
from synthgen.releases.upload import upload_release
from synthgen.stages import evaluate
from synthgen.stages.layout import (
    AutoencoderLayout, ClassifierLayout, DiffusionLayout, FilterLayout, PreparedLayout, ReleasesLayout, SweepLayout,
    SyntheticLayout,
)
from synthgen.storage import is_url, join, open_store
from synthgen.training.distributed import cpu_threads

log = logging.getLogger(__name__)
STAGING = Path(".synthgen") / "releases"  # local working roots of remote releases roots, by URL


@dataclass(frozen=True)
class Inputs:
    prepared: PreparedLayout
    classifier: ClassifierLayout
    sweep: SweepLayout
    diffusion: DiffusionLayout  # refill samples with the models that made the release
    autoencoder: AutoencoderLayout
    filter: FilterLayout  # and screens them as the sample stage did


@dataclass(frozen=True)
class ReleaseVerdict:
    entry: ReleaseEntry  # the release's row in the index, as recorded
    reasons: tuple[str, ...]  # why the gate rejected it (empty when published)

    @property
    def published(self) -> bool:
        return self.entry.status == "published"


def needs_sampling(params: Params, target: Path) -> bool:
    """A release that refill has changed is never sampled again (that would undo the refill)."""
    return not (params.evaluate.refill.enabled and refill_progress(target).started)


def refill_round(params: Params, inputs: Inputs, target: Path, seed: int, round: int,
                 flagged: list[str] | None) -> None:
    """Replace `flagged` in round `round` (None: finish the round a crash interrupted)."""
    cfg = params.sample
    models = load_models(str(inputs.diffusion.root), str(inputs.autoencoder.root), cfg.device, cfg.compile,
                         cfg.channels_last)
    screen = screen_for(cfg, inputs.filter.root, models, models.diffusion.class_names)
    with cpu_threads(cfg.cpu_threads):
        refill_dataset(target, flagged, models, cfg, seed, round, params.evaluate.refill.criteria, screen)


def evaluated(params: Params, inputs: Inputs, target: Path) -> dict:
    """Evaluate the release in place (its evaluation lives beside its shards); the gate's verdict."""
    verdict = evaluate.run(params.evaluate, evaluate.Inputs(inputs.prepared, SyntheticLayout(target),
                                                            inputs.classifier, inputs.sweep), target)
    write_resolved(params, target)
    return verdict


def evaluate_and_refill(params: Params, inputs: Inputs, target: Path, seed: int) -> dict:
    """Evaluate; with refill, replace the flagged samples and evaluate again until none is flagged or
    `max_rounds` rounds are done. Returns the last evaluation's verdict."""
    refill = params.evaluate.refill
    pending = refill_progress(target).pending if refill.enabled else None
    if pending is not None:
        refill_round(params, inputs, target, seed, pending, None)
    verdict = evaluated(params, inputs, target)
    if refill.enabled:
        for round in range(refill_progress(target).rounds + 1, refill.max_rounds + 1):
            flagged = select_flagged(target, refill.criteria)
            if not flagged:
                break
            log.info("refill round %d: replacing %d flagged samples (%s)", round, len(flagged), ", ".join(refill.criteria))
            refill_round(params, inputs, target, seed, round, flagged)
            verdict = evaluated(params, inputs, target)
    return verdict


def make_release(params: Params, inputs: Inputs, releases: ReleasesLayout, release_id: str, seed: int,
                 sample: Callable[[Path], object]) -> ReleaseVerdict:
    """Make (or resume) release `release_id` with run seed `seed`: `sample(target)` writes the dataset, then
    evaluate, refill and gate it and record the verdict in the index. Any error records the release as
    failed (the next run resumes it) and propagates."""
    target = releases.release(release_id)
    with claim(target, RELEASE, lock=release_lock(target)):
        started = start_release(releases.root, release_id, seed, params_hash(params))
        try:
            if needs_sampling(params, target):
                sample(target)
            verdict = evaluate_and_refill(params, inputs, target, seed)
        except Exception as e:
            fail_release(releases.root, started, f"{type(e).__name__}: {e}")
            raise
        annotate_dataset(target, target)
        freeze(target)
        entry = finish_release(releases.root, started)
    return ReleaseVerdict(entry, tuple(verdict["reasons"]))


def working_root(releases: str | Path) -> Path:
    """Where releases under `releases` are made: the folder itself, or for a URL a local folder named after it."""
    if not is_url(releases):
        return Path(releases)
    scheme, rest = str(releases).split("://", 1)
    return STAGING / scheme / rest.strip("/")


def make_release_at(params: Params, inputs: Inputs, releases: str | Path, release_id: str, seed: int,
                    sample: Callable[[Path], object]) -> ReleaseVerdict:
    """`make_release` under the releases root `releases`; for a URL, made locally, then uploaded and indexed there."""
    work = ReleasesLayout(working_root(releases))
    if not is_url(releases):
        return make_release(params, inputs, work, release_id, seed, sample)
    remote = get_release(releases, release_id)
    if remote is not None and remote.status in FINAL:
        raise ReleaseFinishedError(f"release {release_id} is already {remote.status} in {releases}; releases are "
                                   "append-only, so make another")
    local = get_release(work.root, release_id)
    if local is None or local.status not in FINAL:
        local = make_release(params, inputs, work, release_id, seed, sample).entry
    upload_release(work.release(release_id), open_store(join(releases, release_id)))
    return ReleaseVerdict(record_release(releases, local), tuple(gate_verdict(work.release(release_id))[1]))
