"""Benchmarks: minidl's references against PyTorch's built-ins, measured in the same run."""
