"""Checks of the repository as a whole: packaging, distributions, docs, example DAGs, supported versions,
import layers, the signatures kept in step with the filter table, and the test suite's own layout and split."""
