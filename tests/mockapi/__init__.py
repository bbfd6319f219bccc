"""Tests of resurgo.mockapi (a package so the tests can share the _cli helper)."""
