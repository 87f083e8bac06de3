"""Asset checks: data-quality suites (great-expectations 1.x), model gates, drift."""
