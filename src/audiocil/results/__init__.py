"""What a run records, one record class per scenario, written in one schema
(:mod:`audiocil.results.io`)."""

from audiocil.results.io import SCHEMA_VERSION, atomic_write_text, read_long, write_outputs
from audiocil.results.standard import RunRecord

__all__ = ["SCHEMA_VERSION", "RunRecord", "atomic_write_text", "read_long", "write_outputs"]
