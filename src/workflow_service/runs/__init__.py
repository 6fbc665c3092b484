"""Pipeline runs: state, inputs, console, progress and artifacts."""
