"""Pronto's API (``/compat/pronto/api/v2/``) over Sluice's services (docs/compat.md)."""
