"""The one Parquet schema: declared columns, group defaults, key-value metadata, the old-format error."""
import json
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from synthgen.atomic import atomic_write_json
from synthgen.card import schema_table
from synthgen.imaging import encode_image
from synthgen.shards import ShardSample, ShardStoreError, ShardWriter, load_metadata, read_manifest, write_shard
from synthgen.shards.names import FORMAT, MANIFEST
from synthgen.shards.schema import BY_NAME, COLUMNS, FORMAT_KEY, complete_row, read_class_names

README = Path(__file__).resolve().parents[1] / "README.md"


def samples(n, meta):
    rng = np.random.default_rng(0)
    for i in range(n):
        image = encode_image(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
        yield ShardSample(f"s-{i:04d}", image, i % 2, ["cat", "dog"][i % 2], 8, 8, "png", meta(i))


def write(folder, meta=lambda i: {"seed": i}, n=5, class_names=None):
    with ShardWriter(folder, "s", max_count=2) as writer:
        for s in samples(n, meta):
            writer.write(s)
        return writer.finish_dataset(extra={"class_names": class_names} if class_names else None)


def test_a_row_gets_its_whole_group_with_declared_defaults():
    row = complete_row({**{c.name: 1 for c in COLUMNS if c.group == "sample"}, "seed": 3})
    assert row["seed"] == 3 and row["refill_round"] == 0 and row["replaces"] is None and row["sampler"] is None
    assert "origin" not in row  # another group


def test_undeclared_or_missing_columns_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"columns \['colour'\] are not declared"):
        write_shard(tmp_path / "s-000000.tar", samples(1, lambda i: {"colour": "red"}))
    with pytest.raises(ValueError, match="row 'k' has no 'shard'"):
        complete_row({"key": "k", "seed": 1})


def test_every_metadata_file_has_one_schema_and_carries_format_and_class_names(tmp_path):
    manifest = write(tmp_path, class_names=["cat", "dog", "bird"])
    merged = pq.read_schema(tmp_path / "metadata.parquet")
    for shard in manifest["shards"]:
        schema = pq.read_schema(tmp_path / shard["index"])
        assert schema.remove_metadata() == merged.remove_metadata()
        assert schema.metadata[FORMAT_KEY] == FORMAT.encode()
        assert read_class_names(schema) in (["cat"], ["cat", "dog"])  # a shard's index: the names its rows carry
    assert read_class_names(merged) == ["cat", "dog", "bird"]  # the dataset's: the full list, though no row is a bird
    assert [merged.field(n).type for n in ("index", "seed", "steps", "refill_round")] == [
        BY_NAME[n].type for n in ("index", "seed", "steps", "refill_round")]


def test_rows_without_a_group_column_still_share_the_schema(tmp_path):
    """A shard whose rows name only `seed` and one whose rows name `sampler` too: the same columns."""
    write(tmp_path, meta=lambda i: {"seed": i} if i < 2 else {"seed": i, "sampler": "ddim"})
    frame = load_metadata(tmp_path).collect()
    assert frame["refill_round"].to_list() == [0] * 5 and frame["sampler"].null_count() == 2


def test_a_label_with_two_names_is_refused(tmp_path):
    bad = [ShardSample(f"k{i}", s.image, 0, name, 8, 8, "png") for i, (s, name) in
           enumerate(zip(samples(2, lambda i: {}), ["cat", "dog"]))]
    with pytest.raises(ValueError, match="label 0 is named both 'cat' and 'dog'"):
        write_shard(tmp_path / "k-000000.tar", bad)


def test_an_old_layout_is_one_clear_error(tmp_path):
    manifest = write(tmp_path)
    atomic_write_json(tmp_path / MANIFEST, {**manifest, "format": "synthgen.shards/v1"})
    with pytest.raises(ShardStoreError, match="synthgen.shards/v1 dataset, an older layout"):
        read_manifest(tmp_path)


def test_readme_documents_the_declared_schema():
    assert schema_table(COLUMNS) in README.read_text()
