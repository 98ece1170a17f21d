"""WebShop's search engine without Java: bm25s configured as Lucene's BM25 over WebShop's documents.

WebShop indexes each product with Pyserini (Lucene EnglishAnalyzer, BM25 k1=0.9, b=0.4); a document's
text is the lower-cased "Title Description BulletPoints[0] option-text". Here: bm25s (method "lucene",
k1=0.9, b=0.4) over tokens from an analyzer that does what EnglishAnalyzer does (standard tokenizer,
possessive "'s" removal, lower case, Lucene's 33 English stop words, Porter stemming). Hits are the
documents matching at least one query term, best first, ties in index order, at most 50 (WebShop's
SEARCH_RETURN_N). The keyword prefixes `<r>`, `<a>`, `<c>`, `<q>` list random, attribute, category and
query matches, as upstream (`<r>` with a seeded RNG).
"""

from __future__ import annotations

import random
import re
from collections import OrderedDict, defaultdict
from typing import Any

import bm25s
import numpy as np
import Stemmer

SEARCH_RETURN_N = 50

# Lucene's EnglishAnalyzer.ENGLISH_STOP_WORDS_SET.
LUCENE_STOP_WORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there these "
    "they this to was will with".split()
)
# Letters/digits runs, keeping inner "." "'" joins as Lucene's StandardTokenizer does ("6.7", "l'eau").
_TOKEN = re.compile(r"[^\W_]+(?:['.’][^\W_]+)*")


class Analyzer:
    """Lucene EnglishAnalyzer, near enough: tokens -> stems (possessives dropped, stop words removed)."""

    def __init__(self) -> None:
        self._stemmer = Stemmer.Stemmer("porter")

    def __call__(self, text: str) -> list[str]:
        tokens = []
        for tok in _TOKEN.findall(text.lower()):
            tok = tok.replace("’", "'")
            if tok.endswith("'s"):
                tok = tok[:-2]
            if tok and tok not in LUCENE_STOP_WORDS:
                tokens.append(tok)
        # Lucene's PorterStemmer leaves words of 1-2 letters alone; Snowball's porter stems "s" to "",
        # a token bm25s's index has no column for (a query holding it raised ValueError).
        stems = self._stemmer.stemWords(tokens)
        return [t if len(t) <= 2 else s for t, s in zip(tokens, stems)]


def document_text(product: dict[str, Any]) -> str:
    """WebShop's indexed `contents` of a product."""
    option_text = ", and ".join(f"{name}: {', '.join(values)}" for name, values in product["options"].items())
    bullets = product["BulletPoints"]
    return " ".join([product["Title"], product["Description"], bullets[0] if bullets else "", option_text]).lower()


class SearchEngine:
    """Top-50 asins for a keyword list; built once per catalogue, results cached per query."""

    def __init__(self, products: list[dict[str, Any]], cache_size: int = 4096) -> None:
        self.products = products
        self.asins = [p["asin"] for p in products]
        self.analyzer = Analyzer()
        corpus = [self.analyzer(document_text(p)) for p in products]
        self.bm25 = bm25s.BM25(method="lucene", k1=0.9, b=0.4)
        self.bm25.index(corpus, show_progress=False)
        self._attr_index: dict[str, list[str]] = defaultdict(list)
        for p in products:
            for a in p["Attributes"]:
                self._attr_index[a].append(p["asin"])
        self._cache: OrderedDict[str, list[str]] = OrderedDict()
        self._cache_size = cache_size

    def search(self, keywords: list[str]) -> list[str]:
        key = " ".join(keywords)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        result = self._search(keywords)
        self._cache[key] = result
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return result

    def _search(self, keywords: list[str]) -> list[str]:
        head = keywords[0] if keywords else ""
        if head == "<r>":
            rng = random.Random(" ".join(keywords))
            return rng.sample(self.asins, k=min(SEARCH_RETURN_N, len(self.asins)))
        if head == "<a>":
            return list(self._attr_index.get(" ".join(keywords[1:]).strip(), []))
        if head == "<c>":
            cat = keywords[1].strip() if len(keywords) > 1 else ""
            return [p["asin"] for p in self.products if p["category"] == cat]
        if head == "<q>":
            q = " ".join(keywords[1:]).strip()
            return [p["asin"] for p in self.products if p["query"] == q]
        return self.rank(" ".join(keywords))

    def scores(self, query: str) -> np.ndarray:
        ids = self.bm25.get_tokens_ids(self.analyzer(query))
        if not ids:
            return np.zeros(len(self.asins), dtype=np.float32)
        return self.bm25.get_scores_from_ids(ids)

    def rank(self, query: str, k: int = SEARCH_RETURN_N) -> list[str]:
        scores = self.scores(query)
        matched = np.flatnonzero(scores > 0)
        order = matched[np.lexsort((matched, -scores[matched]))][:k]  # score desc, then index order
        return [self.asins[i] for i in order]
