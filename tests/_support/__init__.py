"""Helpers of the tests (not tests themselves)."""
