"""The example scenes; the Cornell box ships as package data (farm.scenes), the default
scene of `farm bench` and `farm chaos`."""
