"""Importers that turn public dataset layouts into the project's data contract.

Each importer streams a dataset's files (local or `gs://`, gzip by `.gz` suffix) and writes, under
an output directory, the two JSON Lines files `recstack ingest` reads
(`features.RAW_INTERACTIONS_FILE`, `features.RAW_ITEMS_FILE`) plus `REJECTS_FILE`, which holds
every source row that could not be converted, with file, line number, raw text and reason.

    from beam_jobs.importers import detect_layout, import_dataset

    summary = import_dataset(detect_layout("ml-25m"), "ml-25m", "data/ml-25m")

Modules: `registry` (layout names, detection, dispatch), `movielens` and `amazon` (one per dataset
family), `rows` (contract rows and reason codes), `sink` (output files and counts),
`source_files` (locating and streaming source files).
"""

from beam_jobs.importers.amazon import import_amazon
from beam_jobs.importers.movielens import (
    import_movielens_1m,
    import_movielens_100k,
    import_movielens_csv,
)
from beam_jobs.importers.registry import LAYOUTS, detect_layout, import_dataset
from beam_jobs.importers.rows import Rejected
from beam_jobs.importers.sink import REJECTS_FILE

__all__ = [
    "LAYOUTS",
    "REJECTS_FILE",
    "Rejected",
    "detect_layout",
    "import_amazon",
    "import_dataset",
    "import_movielens_100k",
    "import_movielens_1m",
    "import_movielens_csv",
]
