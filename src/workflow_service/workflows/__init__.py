"""Workflows: pipelines chained into a DAG whose artifacts flow downstream."""
