"""Data-provider adapters (one module per vendor), their registry, and the simulator."""
