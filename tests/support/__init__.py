"""Helpers shared by runyard's test tiers (service availability, see ``services``)."""
