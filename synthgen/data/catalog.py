"""Every data source `data.source` can name: the one list a new source module is added to."""
from __future__ import annotations

from typing import TYPE_CHECKING

from synthgen.data import cifar10, digits, imagefolder, mnist, shapes, webdataset_source
from synthgen.data.sources import Source, SourceSpec

if TYPE_CHECKING:
    from synthgen.config.data import DataConfig

SOURCES: dict[str, SourceSpec] = {spec.name: spec for spec in (
    shapes.SOURCE, digits.SOURCE, imagefolder.SOURCE, webdataset_source.SOURCE, mnist.SOURCE, cifar10.SOURCE,
)}


def open_source(cfg: DataConfig) -> Source:
    """The source `cfg.source` names, read with its options. Raises DataSourceError if its files are
    missing or unusable."""
    return SOURCES[cfg.source].read(cfg.options(), cfg.resolution)
