"""OpenCL C sources of the path tracer, shipped as package data (farm.kernels)."""
