"""The history store: market data at rest, as Parquet files under `[data] dir`.

Kiwoom-free (engine/kiwoom/ turns chart answers into `engine.models.Candle`s before they reach
here) and pyarrow-free at import: pyarrow is imported inside the functions that read or
write, so the daemon, which never touches the store, never loads it.
"""
