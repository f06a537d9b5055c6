"""Read provincial export files into raw-text tables with exact source rows."""

from pipeline.ingest.readers import IngestError, ReadResult, read_export

__all__ = ["IngestError", "ReadResult", "read_export"]
