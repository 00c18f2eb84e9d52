"""What only a render worker runs: its per-process state, the OpenCL device, the
renderer, and the cache of fetched files. It never imports the client."""
