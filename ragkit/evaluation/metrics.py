"""Ranking metrics through ir-measures, on trec_eval's own code (pytrec_eval).

BEIR and MTEB, and so the model card's LoCo figures, score with pytrec_eval, so these numbers are
comparable with theirs: nDCG uses the grade itself as the gain, and ties break as trec_eval breaks them
(score descending, then document id descending). ir-measures computes RR@10 with another provider, which
breaks ties the other way, so a tie (common in hybrid mode, where fused scores are rank-based) would put
one document at two ranks; each run is therefore re-scored by its rank in trec_eval's order first, and
every metric reads the same ranking. One difference is deliberate: trec_eval averages over the queries a run answers, which would let a
query with no results vanish from the mean; here every judged query counts, a missing one as 0.
"""

from __future__ import annotations

from collections.abc import Mapping

import ir_measures
from ir_measures import RR, R, nDCG

METRICS = {"ndcg@10": nDCG @ 10, "recall@10": R @ 10, "recall@100": R @ 100, "mrr@10": RR @ 10}
"""Stable keys (as in --json) -> measures; nDCG@10 is the headline."""

LABELS = {"ndcg@10": "nDCG@10", "recall@10": "Recall@10", "recall@100": "Recall@100", "mrr@10": "MRR@10"}


def score(qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Mean of each metric over the queries of `qrels` that have a relevant document."""
    judged = [qid for qid, grades in qrels.items() if any(grade > 0 for grade in grades.values())]
    if not judged:
        return {name: 0.0 for name in METRICS}
    measure_names = {measure: name for name, measure in METRICS.items()}
    totals = dict.fromkeys(METRICS, 0.0)
    judged_qrels = {qid: dict(qrels[qid]) for qid in judged}
    answered = {qid: _trec_eval_order(run[qid]) for qid in judged if run.get(qid)}
    for metric in ir_measures.iter_calc(list(METRICS.values()), judged_qrels, answered):
        totals[measure_names[metric.measure]] += metric.value
    return {name: total / len(judged) for name, total in totals.items()}


def _trec_eval_order(scores: Mapping[str, float]) -> dict[str, float]:
    """`scores` replaced by distinct ones that rank the documents as trec_eval does, leaving no tie."""
    ranked = sorted(scores.items(), key=lambda item: (item[1], item[0]), reverse=True)
    return {doc_id: float(len(ranked) - rank) for rank, (doc_id, _) in enumerate(ranked)}
