"""Thin Prefect flows and the `mmr-pipeline` command line over `pipeline/` and `stores/`."""
