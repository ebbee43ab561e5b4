"""Period-close billing exports: files derived from committed seals that anyone holding the genesis file can
verify offline. docs/export-format.md describes the files; this package builds, writes and verifies them.

Pure core (no clock, no sqlite, no threads): `build_export` makes `{file name: bytes}` and `verify_export`
checks such a mapping. The only file I/O is in `writer` (`write_export`, `read_export`); `committed` reads a
node's store through a handful of its methods.
"""

from .build import ExportError, as_meter_rows, build_export
from .committed import (
    committed_rows, export_committed, export_period, exported, exports_of_seal, find_height, latest_version,
)
from .manifest import FORMAT, FORMAT_VERSION, MANIFEST
from .period_data import decode_period_rows, encode_period_rows
from .report import Problem, Report
from .verify import verify_export
from .writer import (
    EXPORTS_DIR, INDEX, ExportConflict, export_dir, export_path, read_export, read_index, remove_stale_temporaries,
    write_export,
)

__all__ = [
    "EXPORTS_DIR", "FORMAT", "FORMAT_VERSION", "MANIFEST", "ExportConflict", "ExportError", "Problem", "Report",
    "as_meter_rows", "build_export", "committed_rows", "decode_period_rows", "encode_period_rows", "export_committed",
    "export_dir", "export_path", "export_period", "exported", "exports_of_seal", "find_height", "latest_version",
    "read_export", "remove_stale_temporaries", "verify_export", "write_export", "INDEX", "read_index",
]
