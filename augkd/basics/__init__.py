"""The ground floor: the typed config schema (every default), errors and the failure policy,
the names a config chooses among, metric names, seeds, statistics over seeds, rates and ETAs.
Imports nothing else of augkd."""
