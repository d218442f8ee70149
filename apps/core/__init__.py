"""What every Sluice app shares: errors, request ids, pagination, health."""
