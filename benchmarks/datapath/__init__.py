"""Benchmarks of the mirror data path (fio: native directory vs the FUSE mount)."""
