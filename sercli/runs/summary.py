"""What `sercli train` says about its jobs on stderr: one line per job, and one on real data."""

from __future__ import annotations

from typing import Any

from sercli.learning import fold as prep


def job_line(fold: Any, seed: int, summary: dict[str, Any]) -> str:
    """"fold-00 (test speakers spk3) seed 0: 18 real + 12 of 24 synthetic, validation UA 0.4444":
    the synthetic utterances the strategy trained on (``Trainer.note_used``), of those the job
    had; a strategy that reports none is said to use none ("+ 0 of 24 synthetic")."""
    available, used = summary["n_synthetic"], summary.get("n_synthetic_used")
    synthetic = f"{used or 0} of {available} synthetic" if available else "0 synthetic"
    scores = ", ".join(f"{k} {summary[f'val_{k}']:.4f}" for k in ("UA", "CCC") if f"val_{k}" in summary)
    return f"{fold.name} ({fold.description}) seed {seed}: {summary['n_train']} real + {synthetic}, validation {scores}"


def learned_from(jobs: list[prep.Split]) -> str:
    """The run summary's line on real data: "learned from 345 of 1,380 real utterances, 25%"
    (per job; a range when the jobs differ)."""
    used = [j.real_used() for j in jobs]
    n = sorted({u["learned_from"] for u in used})
    of = sorted({u["non_test"] for u in used})
    share = sorted({u["share"] for u in used})
    span = lambda xs, f: f(xs[0]) if len(xs) == 1 else f"{f(xs[0])}-{f(xs[-1])}"  # noqa: E731
    who = "each job" if len(jobs) > 1 else "the job"
    return (f"Real data: {who} learned from {span(n, '{:,}'.format)} of {span(of, '{:,}'.format)} "
            f"non-test real utterances, {span(share, lambda s: f'{s:.0%}')}")
