"""Statement sets: generated topics (one file each) and users' CSVs."""

from mlsafety.monitoring.honesty.datasets.base import (
    STATEMENT_SETS,
    Statements,
    load_statements_csv,
    make_statements,
    write_statements_csv,
)

__all__ = ["STATEMENT_SETS", "Statements", "load_statements_csv", "make_statements", "write_statements_csv"]
