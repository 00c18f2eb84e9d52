"""What the client and the workers both speak through Redis: connections, key names,
the task queue, the worker registry, jobs, tiles, leases, events, and the scene's files."""
