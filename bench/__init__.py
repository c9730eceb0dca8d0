"""Benchmarks of minicnn against PyTorch (python -m bench). See bench/README.md."""
