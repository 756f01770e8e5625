"""fjffi kernels on dask arrays (placeholder, filled in below)."""
