"""Benchmarks of evstore against raw PostgreSQL and eventsourcing (see README.md)."""
