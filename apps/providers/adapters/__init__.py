"""Vendor adapters; each module knows one vendor's HTTP shape and nothing else."""
