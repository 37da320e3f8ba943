"""A byte-pair-encoding tokenizer trained on the corpus."""

from collections import Counter


class BPETokenizer:
    def __init__(self, merges, vocab):
        self.merges = merges
        self.vocab = vocab
        self._words = {}

    @classmethod
    def train(cls, corpus, num_merges):
        words = Counter(tuple(word) + ("</w>",) for line in corpus for word in line.split())
        merges = []
        for _ in range(num_merges):
            pairs = Counter()
            for word, count in words.items():
                for pair in zip(word, word[1:]):
                    pairs[pair] += count
            if not pairs:
                break
            best = max(pairs, key=pairs.get)
            merges.append(best)
            words = Counter({_merge(word, best): count for word, count in words.items()})
        symbols = sorted({s for word in words for s in word} | {"<unk>", "<pad>"})
        return cls(merges, {s: i for i, s in enumerate(symbols)})

    def encode(self, line):
        ids = []
        for word in line.split():
            cached = self._words.get(word)
            if cached is None:
                symbols = tuple(word) + ("</w>",)
                for pair in self.merges:
                    symbols = _merge(symbols, pair)
                cached = [self.vocab.get(s, self.vocab["<unk>"]) for s in symbols]
                self._words[word] = cached
            ids.extend(cached)
        return ids


def _merge(word, pair):
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
            out.append(word[i] + word[i + 1])
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def train_tokenizer(corpus, num_merges):
    return BPETokenizer.train(corpus, num_merges)
