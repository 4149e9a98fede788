"""Running the trials: Ray, the Tuner, the trial entry that Tune and the evaluation share,
Optuna's sampler, ASHA that resumes, progress, interrupts, and how a search ended."""
