"""Tenants, plans, API keys, credits and the ledger."""
