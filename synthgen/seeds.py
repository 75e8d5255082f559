"""One seed derivation for the whole project: `derive_seed(root_seed, "stage/purpose", *indices)`.

Every random stream is named by a purpose in `PURPOSES`, the single table of the project's streams. Each
entry derives its seed exactly as that stream was seeded before the table existed, so outputs keep their
bytes. The table is frozen: changing an entry reseeds that stream and changes every output drawn from it.
Three pairs of purposes share a derivation, inherited from hand-numbered streams (see the comments); they
draw equal seeds only when their roots are equal.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

SEED_MODULUS = 2**63  # every derivation lands in [0, 2^63): a non-negative int64 and a valid manual_seed


def seed_sequence(root: int, *keys: int) -> int:
    """63 bits of NumPy's SeedSequence([root, *keys]) (a well-mixed hash; trailing zero keys do not change it)."""
    return int(np.random.SeedSequence([root, *keys]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def sha256_path(*parts: object) -> int:
    """63 bits of sha256("synthgen/<part>/<part>/..."): its first 8 bytes read little-endian, shifted right by one.

    The same on every platform and Python version (unlike `hash()`), for int and str parts alike.
    """
    digest = hashlib.sha256("/".join(["synthgen", *map(str, parts)]).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


@dataclass(frozen=True)
class Purpose:
    """One random stream: the indices its seed takes after the root, and how the seed is derived (frozen)."""

    indices: tuple[str, ...]  # names of the indices, e.g. ("epoch",); derive_seed checks their count
    derive: Callable[..., int]  # (root, *indices) -> seed


def keyed(*keys: int) -> Callable[..., int]:
    """SeedSequence([root, *keys, *indices]): the hand-numbered stream keys of the stages."""
    return lambda root, *indices: seed_sequence(root, *keys, *indices)


PURPOSES: dict[str, Purpose] = {
    # the training loop of every network; root: train.seed
    "train/batch_order": Purpose(("epoch",), keyed(1)),  # permutation of the training set each epoch
    "train/objective_noise": Purpose(("rank",), keyed(2)),  # the loop's generator: noise, timesteps, label drop
    "train/torch_default": Purpose(("rank",), keyed(3)),  # torch's default generators (dropout)
    # autoencoder; root: autoencoder.train.seed
    "autoencoder/scale_factor": Purpose((), keyed(11)),  # the images and posterior noise of the scale factor
    "autoencoder/init": Purpose((), keyed(12)),  # weight init
    "autoencoder/eval": Purpose((), keyed(13)),  # posterior noise of the final evaluation
    # latent diffusion; root: diffusion.train.seed
    "diffusion/init": Purpose((), keyed(21)),  # weight init
    "diffusion/preview_x_T": Purpose((), keyed(22, 0)),  # x_T of grid.png
    "diffusion/preview_sampler": Purpose((), keyed(22, 1)),  # the preview sampler's own noise
    "diffusion/latent_stats": Purpose((), keyed(23)),  # the latents whose statistics metrics.json reports
    "diffusion/eval": Purpose((), keyed(24)),  # latents, timesteps of the evaluation loss
    "diffusion/eval_loss_noise": Purpose(("batch_start",), lambda root, start: start),  # ignores the root (legacy)
    # feature classifier; root: evaluate.classifier_train.seed, or evaluate.cas.train.seed for the CAS reference
    "classifier/init": Purpose((), keyed(21)),  # weight init; the derivation of diffusion/init (legacy)
    "classifier/cas_real_subset": Purpose((), keyed(22)),  # real CAS images; that of diffusion/preview_x_T (legacy)
    # evaluate; root: evaluate.seed
    "evaluate/measured_subset": Purpose((), keyed(31)),  # the synthetic samples the metrics use
    "evaluate/kid_subsets": Purpose((), keyed(32)),  # KID subsets, generated against train
    "evaluate/kid_baseline_subsets": Purpose((), keyed(33)),  # KID subsets, val against train
    "evaluate/equal_size_subsets": Purpose((), keyed(34)),  # val-sized subsets of the measured samples (FD, P/R)
    "evaluate/cas_subset": Purpose((), keyed(35)),  # synthetic images the CAS classifier trains on
    "evaluate/equal_size_val": Purpose((), keyed(36)),  # measured-sized subset of val
    "evaluate/utility_real_subset": Purpose((), keyed(37)),  # the n real train images of each utility fraction
    # sweep_samplers; root: evaluate.seed
    "sweep/x_T": Purpose((), lambda root: root),  # x_T shared by every run
    "sweep/sampler_noise": Purpose((), lambda root: root + 1),  # each run's sampler noise
    "sweep/fd_reference": Purpose((), lambda root: root),  # real train and val subsets; that of sweep/x_T (legacy)
    # sample; root: sample.seed, then a sample's own seed
    "sample/seed": Purpose(("index",), lambda root, index: sha256_path("sample", root, index)),  # per global index
    "sample/x_T": Purpose((), lambda root: 2 * root % SEED_MODULUS),  # root: the sample's seed
    "sample/sampler_noise": Purpose((), lambda root: (2 * root + 1) % SEED_MODULUS),  # root: the sample's seed
    "sample/attempt": Purpose(("attempt",), lambda root, attempt: root if attempt == 0  # root: the sample's seed;
                              else sha256_path("sample", "attempt", root, attempt)),  # a draw the filter rejected is redrawn
    # releases; root: params' sample.seed
    "release/seed": Purpose(("release_id",), lambda root, release: sha256_path("release", root, release)),
    # the consumer's reader; root: open_dataset's seed
    "reader/shard_order": Purpose(("epoch",), lambda root, epoch: sha256_path("reader", "shard_order", root, epoch)),
    "reader/sample_buffer": Purpose(("epoch", "rank", "worker"), lambda root, *ix: sha256_path("reader", "buffer", root, *ix)),
}


def derive_seed(root_seed: int, purpose: str, *indices: int | str) -> int:
    """The seed of stream `purpose` (a key of `PURPOSES`) under `root_seed`, for `indices` (e.g. an epoch)."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown seed purpose {purpose!r}; add it to synthgen/seeds.py PURPOSES")
    entry = PURPOSES[purpose]
    if len(indices) != len(entry.indices):
        raise ValueError(f"seed purpose {purpose!r} takes indices ({', '.join(entry.indices)}), got {indices}")
    return entry.derive(int(root_seed), *indices)
