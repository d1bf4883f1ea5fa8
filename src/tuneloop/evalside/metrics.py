"""Text metrics for one (prediction, reference) pair, and the refusal detector.

Every score is in [0, 1], higher is better, and an identical pair scores 1. The word-level metrics
(exact match, token F1, ROUGE-L) compare the words of :func:`tuneloop.textnorm.normalize`, the
normalization every hash and signature in tuneloop uses, so "Paris." and "paris" are the same
answer here exactly as they are the same text to the contamination check. chrF works on the raw
characters (it is sacrebleu's, so its numbers compare with published ones) and ignores whitespace.

Conventions for empty text, as in the SQuAD script: two empty texts agree (1.0); an empty text
and a non-empty one do not (0.0). Without that rule a model that answers nothing to a question
whose answer normalizes to nothing (a lone "?") would score 0 against itself.

Perplexity is deliberately not a metric in reports: the gate treats every metric except ``loss``
as higher-is-better, so a stored perplexity would be compared the wrong way round. It is
:func:`perplexity` of the stored loss.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence

from tuneloop.evalside.fields import field_accuracy
from tuneloop.textnorm import normalize, words

# Phrases that open a refusal. They are matched case-insensitively inside the *first sentence*
# only: "I can't" in the first sentence is a refusal, while an answer that starts helping and later
# says "I can't guarantee this works on Windows" is not. Curly apostrophes are straightened first.
REFUSAL_PHRASES: tuple[str, ...] = (
    "i can't",
    "i cannot",
    "i can not",
    "i won't",
    "i will not",
    "i'm not able to",
    "i am not able to",
    "i'm unable",
    "i am unable",
    "i'm not going to",
    "i am not going to",
    "i must decline",
    "i have to decline",
    "i'm not comfortable",
    "i am not comfortable",
    "i don't feel comfortable",
    "i do not feel comfortable",
    "sorry, but",
    "i apologize, but",
    "as an ai",
    "as a language model",
    "i'm not allowed to",
    "i am not allowed to",
    "it is not appropriate for me",
    "that's not something i can",
    "this is not something i can",
)
# How much of an answer counts as its opening when it has no sentence end early on.
_OPENING_CHARS = 300
_SENTENCE_END = re.compile(r"[.!?\n]")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when both normalize to the same text, else 0.0."""
    return float(normalize(prediction) == normalize(reference))


def _empty_rule(pred: Sequence[str], ref: Sequence[str]) -> float | None:
    """The SQuAD convention for empty texts, or None when both have words."""
    if not pred or not ref:
        return float(not pred and not ref)
    return None


def _f_measure(overlap: int, n_pred: int, n_ref: int) -> float:
    """Harmonic mean of precision and recall (symmetric in the two lengths)."""
    if overlap == 0:
        return 0.0
    return 2.0 * overlap / (n_pred + n_ref)


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD-style F1 over the bags of normalized words (order ignored, repeats counted)."""
    pred, ref = words(prediction), words(reference)
    empty = _empty_rule(pred, ref)
    if empty is not None:
        return empty
    common = sum((Counter(pred) & Counter(ref)).values())
    return _f_measure(common, len(pred), len(ref))


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence, by the classic DP kept to two rows."""
    if len(b) > len(a):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1: the LCS of the normalized words, as precision and recall, combined.

    Unlike token F1 it rewards the right order: "not a bank" vs "a bank, not" differ here.
    """
    pred, ref = words(prediction), words(reference)
    empty = _empty_rule(pred, ref)
    if empty is not None:
        return empty
    return _f_measure(lcs_length(pred, ref), len(pred), len(ref))


def chrf(prediction: str, reference: str) -> float:
    """sacrebleu's sentence chrF (character n-grams, recall-weighted) scaled to [0, 1].

    chrF ignores whitespace, so two texts with no visible characters are treated as identical
    (sacrebleu alone would give them 0).
    """
    import sacrebleu  # noqa: PLC0415 - heavy (sacrebleu)

    pred_blank, ref_blank = not prediction.split(), not reference.split()
    if pred_blank or ref_blank:
        return float(pred_blank and ref_blank)
    score = float(sacrebleu.sentence_chrf(prediction, [reference]).score) / 100.0
    return min(1.0, max(0.0, score))


def first_sentence(text: str) -> str:
    """The opening of an answer: up to its first sentence end, at most 300 characters."""
    opening = text.strip()[:_OPENING_CHARS]
    match = _SENTENCE_END.search(opening)
    return opening[: match.start()] if match else opening


def is_refusal(text: str) -> bool:
    """Does this answer open by declining? (A phrase of REFUSAL_PHRASES in the first sentence.)

    A heuristic on purpose: it is cheap, deterministic and needs no second model, and the gate
    uses it to compare two models on the same prompts, where its errors mostly cancel.
    """
    opening = " ".join(first_sentence(text).translate(_APOSTROPHES).lower().split())
    return any(phrase in opening for phrase in REFUSAL_PHRASES)


def perplexity(loss: float) -> float:
    """exp(mean token cross-entropy); inf when the loss is too large to exponentiate."""
    try:
        return math.exp(loss)
    except OverflowError:
        return math.inf


TEXT_METRICS: dict[str, Callable[[str, str], float]] = {
    "exact_match": exact_match,
    "token_f1": token_f1,
    "rouge_l": rouge_l,
    "chrf": chrf,
}


def score_text(prediction: str, reference: str, fields: Sequence[str] = ()) -> dict[str, float]:
    """Every text metric of one answer, by name (the names reports and the gate use); with
    ``fields``, ``field_acc`` too where the reference is a JSON object holding some of them."""
    scores = {name: fn(prediction, reference) for name, fn in TEXT_METRICS.items()}
    if fields and (acc := field_accuracy(prediction, reference, fields)) is not None:
        scores["field_acc"] = acc
    return scores
