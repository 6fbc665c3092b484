"""Applications (API clients), their keys and permissions."""
