"""Contacts, bulk jobs and the waterfall that enriches them."""
