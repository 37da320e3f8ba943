"""Token windows for next-token prediction."""

import torch
from torch.utils.data import Dataset

from trainlab.lm.corpus import generate
from trainlab.lm.tokenizer import train_tokenizer


class TokenWindows(Dataset):
    def __init__(self, ids, context):
        self.ids = torch.tensor(ids, dtype=torch.long)
        self.context = context

    def __len__(self):
        return max(0, len(self.ids) - self.context - 1)

    def __getitem__(self, index):
        chunk = self.ids[index:index + self.context + 1]
        return chunk[:-1], chunk[1:]


def build_dataset(cfg):
    corpus = generate(cfg.num_sentences, cfg.seed)
    tokenizer = train_tokenizer(corpus[: cfg.tokenizer_sentences], cfg.num_merges)
    ids = [i for line in corpus for i in tokenizer.encode(line)]
    return tokenizer, TokenWindows(ids, cfg.context)
