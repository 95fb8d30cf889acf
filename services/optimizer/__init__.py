"""PCS Pareto search and router training."""
