"""A small decoder-only transformer language model."""

import torch
from torch import nn


class TinyLM(nn.Module):
    def __init__(self, vocab_size, width, depth, heads, context):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, width)
        self.position = nn.Parameter(torch.zeros(1, context, width))
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0,
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.head = nn.Linear(width, vocab_size)
        self.register_buffer("causal", nn.Transformer.generate_square_subsequent_mask(context))

    def forward(self, tokens):
        length = tokens.shape[1]
        x = self.embed(tokens) + self.position[:, :length]
        x = self.blocks(x, mask=self.causal[:length, :length], is_causal=True)
        return self.head(x)
