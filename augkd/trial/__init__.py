"""One trial: the teacher, the stages it needs (Modules 1-2, cached and shared), Module 3 with a
report at every val pass, several seeds in lockstep, stage keys, a trial's diagnostics."""
