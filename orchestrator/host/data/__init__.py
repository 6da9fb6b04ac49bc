"""Data for the harnesses: the shared cache (``cache``), prefetching (``prefetch``), a prefetched directory in use
(``prefetched``)."""
