"""Ops tooling for staff: the admin dashboard, the read-only support group, re-runs."""
