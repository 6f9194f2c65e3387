"""Readers of input formats shared by several jobs: each streams one file into documents and dead letters."""
