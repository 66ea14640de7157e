"""Unit tests of the context engine."""
