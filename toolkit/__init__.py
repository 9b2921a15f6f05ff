"""Plumbing every entry point shares: config parsing, one-line errors, atomic files, run locks, logs, devices."""
