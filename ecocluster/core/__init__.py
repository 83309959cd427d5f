"""The kernel every stage imports: shared types, settings, the cluster registry, YAML loading,
durations and logging. It imports no stage and no composition code (import-linter checks)."""
