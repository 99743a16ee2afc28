"""The text plugin's classical baseline: logistic regression on TF-IDF word unigrams and bigrams.

Why this one: for topic, spam and sentiment-style labels, which words occur (and which word pairs)
decides most examples, and a linear model on TF-IDF is the long-standing strong baseline for them.
It fits in seconds on the CPU; a fine-tuned BERT-family model is worth its cost where it beats it.

The texts arrive as ``check_data`` left them (empty ones refused or dropped). Sublinear term
frequency (1 + log tf) keeps a repeated word from dominating; every word and bigram seen in training
is a feature (``min_df=1``: small datasets have few repeats). Sentence pairs are joined with the
word ``SEPARATOR``, so the bigrams at the seam mark where the second text begins. TF-IDF rows are
already L2-normalised, so no scaler; ``C=10`` regularises lightly, as suits sparse, informative words.

scikit-learn loads inside the functions: ``tlhub plugins`` imports this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

SEPARATOR = "__sep__"  # one token to TfidfVectorizer's word pattern, and not a word of any language


def joined_texts(values: Sequence[Any]) -> list[str]:
    """One string per example: the text itself, or a pair's texts joined by ``SEPARATOR``."""
    return [f" {SEPARATOR} ".join(value) if isinstance(value, tuple) else value for value in values]


def tfidf_baseline(seed: int) -> Pipeline:
    """TF-IDF of word 1- and 2-grams -> logistic regression (``Modality.baseline``)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    return Pipeline(
        [
            ("join", FunctionTransformer(joined_texts, validate=False)),
            ("tfidf", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)),
            ("classify", LogisticRegression(C=10.0, max_iter=1000, random_state=seed)),
        ]
    )
