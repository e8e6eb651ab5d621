"""Health, readiness, Prometheus metrics and structured logs (docs/architecture.md, "Health, metrics and logs")."""
