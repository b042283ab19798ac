"""AI Researcher runs and steps: a later issue. Usage records already carry kind and run id."""
