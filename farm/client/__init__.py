"""What only the client runs: `submit` and `farm`, collecting a job's tiles into the
frame, and the embedded farm. It sends tasks by name and imports no worker module."""
