"""Adversarial tests of fjffi, by category (a package, so that its module
names never clash with the tests one folder up)."""
