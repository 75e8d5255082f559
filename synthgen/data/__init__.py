"""Dataset sources (shapes, digits, imagefolder, webdataset, mnist, cifar10), safe decoding and `prepare`.

`prepare_dataset` lives in `synthgen.stages.prepare`; it is not imported here so that reading a
source does not pull in the shard store. The registered sources and `open_source` are in
`synthgen.data.catalog`.
"""
from synthgen.data.shapes import render_shapes
from synthgen.data.sources import DataSourceError, Rejection, Source, SourceItem

__all__ = ["DataSourceError", "Rejection", "Source", "SourceItem", "render_shapes"]
