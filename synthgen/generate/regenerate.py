"""Remake one synthetic sample from its metadata row and the checkpoints, and check its sha256."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from synthgen.atomic import sha256_bytes
from synthgen.config.sample import SampleConfig
from synthgen.errors import SynthgenError
from synthgen.generate.models import load_models
from synthgen.generate.shard_sampler import generate_pixels
from synthgen.imaging import encode_image
from synthgen.shards import read_manifest
from synthgen.shards.manifest import METADATA
from synthgen.storage import open_store


@dataclass(frozen=True)
class Regenerated:
    key: str
    image: bytes
    sha256: str
    expected_sha256: str

    @property
    def matches(self) -> bool:
        return self.sha256 == self.expected_sha256


def metadata_row(folder: str | Path, key: str) -> dict:
    table = pq.read_table(pa.BufferReader(open_store(folder).read_bytes(METADATA)))
    rows = table.filter(pc.equal(table["key"], key)).to_pylist()
    if not rows:
        raise SynthgenError(f"no sample with key {key!r} in {folder}")
    return rows[0]


def regenerate(folder: str | Path, key: str, diffusion_dir: str | Path, autoencoder_dir: str | Path,
               device: str = "cpu") -> Regenerated:
    """Regenerate sample `key` of the dataset in `folder` (a path or URL) from its seed, label and sampling config."""
    row = metadata_row(folder, key)
    cfg = SampleConfig.model_validate(read_manifest(folder)["config"]["sample"])
    models = load_models(str(diffusion_dir), str(autoencoder_dir), device)
    for name, model_sha in (("diffusion", models.diffusion.sha256), ("autoencoder", models.autoencoder.sha256)):
        if row[f"{name}_sha256"] != model_sha:
            raise SynthgenError(
                f"{key} was made with {name} checkpoint {row[f'{name}_sha256'][:12]}, but the one given is "
                f"{model_sha[:12]}; point to the checkpoint that made it")
    pixels = generate_pixels(models, np.array([row["label"]]), [int(row["seed"])], cfg)
    image = encode_image(pixels[0], row["format"])
    return Regenerated(key, image, sha256_bytes(image), row["sha256"])


def describe(result: Regenerated) -> str:
    verdict = "identical to the stored image" if result.matches else "DIFFERENT from the stored image"
    return json.dumps({"key": result.key, "sha256": result.sha256, "stored_sha256": result.expected_sha256,
                       "verdict": verdict})
