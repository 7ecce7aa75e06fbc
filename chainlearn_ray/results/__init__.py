"""Results: Parquet schema, atomic store, statistics and figures."""
