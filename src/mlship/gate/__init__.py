"""The release gate: the project's tests, metrics on test data, thresholds, the sandbox, JUnit."""
