"""Work that runs on Ray outside a study's trials: a study's pre-flight check
(:mod:`search.jobs.preflight`) and ensembles of its finished trials
(:mod:`search.jobs.ensembles`)."""
