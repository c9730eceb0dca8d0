"""Benchmarks of minicnn against PyTorch: `minicnn bench`, `python -m minicnn.bench` (installed as
minicnn.bench), or `python -m bench` from the repository root. See bench/README.md."""
