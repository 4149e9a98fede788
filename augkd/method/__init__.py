"""The three AuG-KD modules, their losses and schedules, and the baselines' plans."""
