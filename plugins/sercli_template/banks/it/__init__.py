"""Italian phrase banks (EMOVO's emotions): written for Italian, not translated."""
