"""One trial: the teacher (loaded or trained), the stages it needs (augkd.method.stages:
Modules 1-2, cached and shared), Module 3 with a report at every val pass, several seeds in
lockstep, stage keys, a trial's diagnostics."""
