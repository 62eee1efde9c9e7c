"""Interaction models: what each generation trains on.

An interaction model is a class registered in ``INTERACTIONS`` under
``loop.interaction``, built as ``cls(config, real)``.  For generation ``g`` it
returns the training ``Pool`` (images plus where each came from), says which
labels to sample, and may filter the samples before they enter the history.
It keeps no state between generations: everything it needs comes from the
``History`` (the real data and every finished generation's kept samples,
read back from the run folder), so a resumed run sees exactly what an
uninterrupted one saw.  Randomness comes only from the ``rng`` it is handed
(and, for fixed set-up such as ``fresh``'s reserve, from the chain seed).

The runner calls, per generation ``g`` and in this order (the ``rng`` is the
generation's, shared by the calls)::

    pool = training_set(g, history, rng)          # what every lineage trains on
    labels, n = sample_labels(g, rng)             # what the generation samples ...
    parts = split_samples(g, labels, n)           # ... and how it splits over lineages
    for each lineage l (``lineages()``; one unless ``ecosystem``):
        fit a generator (config overridden by lineages()[l]) on pool, sample parts[l]
        kept_l, stats = select(g, samples_l, rng, scorer)

and stores every lineage's kept samples; ``history.samples(g)`` returns them
(all lineages, tagged), ``history.samples(g, l)`` one lineage's.

Models (n = size of the real training set, N_s = samples per generation):

- ``replace``  (the paper) generation g trains on generation g-1's samples.
- ``mix``      round(``real_fraction`` n) real images (a fresh class-stratified
               draw each generation) + the rest from generation g-1's samples; size n.
- ``accumulate``  the real set plus every earlier generation's samples (grows by
               N_s per generation).
- ``accumulate_subsample``  n images drawn uniformly without replacement from
               that growing pool.
- ``fresh``    a reserve of real images is held back from generation 0 (class-
               stratified, chosen from the chain seed), so generation 0 trains on the
               other n0 images; generation g >= 1 trains on k = round(``fresh_fraction``
               n0) reserve images never used before (taken in a fixed random order)
               plus n0 - k of generation g-1's samples.  The reserve holds exactly
               (generations - 1) k images unless ``loop.schedule.reserve`` fixes its size
               (then images are reused, oldest first, once it is exhausted).
- ``curate``   like ``replace``, but samples enter the history only if the filter
               (the image oracle of ``genloop.metrics.oracle``, independent of the
               judge that measures accuracy) gives
               their conditioning label probability >=
               ``curate_threshold`` (or: the top ``curate_top_fraction`` by that
               probability).  The pool is the kept samples (smaller than n).  Unlabelled
               data: the score is the log-density under a Gaussian fitted to the real
               training set, and ``curate_top_fraction`` must be set.
- ``detect``   the candidates are the real training set plus generation g-1's
               samples (a web holding real and the newest synthetic images); a
               detector removes those it flags and the rest is the pool.  ``oracle``:
               each synthetic image is removed with probability ``detector_recall``,
               each real one with ``detector_false_positive_rate``.  ``learned``: a
               logistic-regression real-vs-generated classifier (L2, C = 1) on standardised
               pixels (and their squares when D <= 256), cross-fitted on two random halves so
               that every candidate is judged by a model that did not see it; its
               measured recall and false-positive rate go into the metrics row.
- ``verify``   samples enter the history only when a verifier with settable false-accept /
               false-reject rates (``loop.verify.false_accept`` / ``_reject``) accepts them
               against the data's exact truth (``VERIFIERS``) or, for labelled images, the
               image oracle's decision (``genloop.metrics.oracle``); later generations train on the
               accepted samples, mixed with real data by the synthetic-fraction schedule.

Every model that mixes real and synthetic data (mix, fresh, accumulate,
accumulate_subsample, verify) reads the synthetic-fraction schedule
(``schedule.py``: ``loop.schedule.kind`` and its keys) when one is set.

- ``ecosystem``  several lineages (``loop.ecosystem.lineages``: generator-config overrides
               each) train on one shared pool; generation g's N_s samples are split
               into shares ``loop.ecosystem.shares``, lineage l sampling its share; the pool of
               g+1 is all of them (so it is ``replace`` on the shared web).
"""
from __future__ import annotations

# One file a model; importing the package registers them all.
from .base import (INTERACTIONS, REAL, History, Interaction, Pool, class_balanced_labels,  # noqa: F401
                   lineage_config, lineage_generator, proportional_counts, take)
from .replace import Replace  # noqa: F401
from .mix import Mix  # noqa: F401
from .accumulate import Accumulate  # noqa: F401
from .accumulate_subsample import AccumulateSubsample  # noqa: F401
from .fresh import Fresh  # noqa: F401
from .curate import CURATE_SCORES, Curate  # noqa: F401
from .detect import DETECTOR_FEATURES, Detect, detector_features, fit_logistic, learned_detector  # noqa: F401
from .ecosystem import Ecosystem  # noqa: F401
from . import schedule  # noqa: F401
from .verify import VERIFIERS, Verify  # noqa: F401  (synthetic-fraction schedules: loop.schedule.kind ...)
