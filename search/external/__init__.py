"""External trials: a study whose trials its clients evaluate, outside the cluster.

A client asks for a trial (:func:`~search.external.asking.ask`: the study's sampler proposes it,
as the sampler loop's would), reports intermediate metrics and gets the pruning decision back
(:func:`~search.external.telling.report`), then tells the outcome
(:func:`~search.external.telling.tell`). Each asked trial is leased to its client
(:mod:`search.loop.lease`): the service's API does the asking and telling, and the study's
run in the scheduler (:class:`~search.loop.external.ExternalRun`) fails trials whose lease
expired and ends the study when its budget is spent. No code of the user's runs on the
cluster: a trial is parameters out, numbers in.
"""
