"""German phrase banks: written for German (verb second, verb-final clauses, cases), not translated."""
