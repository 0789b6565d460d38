"""Evaluation: metrics, scoring trained runs, reports and figures."""
