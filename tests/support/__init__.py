"""Test support that is not itself a test: harnesses that stand in for what cannot run here."""
