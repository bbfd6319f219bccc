"""Tests of the supervision layer (process mechanics, jobs, sessions, health, cleanup)."""
