"""A generated corpus: templated sentences over a fixed vocabulary, seeded."""

import random

SUBJECTS = ["the model", "a batch", "the optimizer", "each worker", "the loader", "a gradient"]
VERBS = ["reads", "updates", "shuffles", "prefetches", "clips", "averages", "logs"]
OBJECTS = ["the weights", "a shard", "the features", "every token", "the cache", "a checkpoint"]
TAILS = ["quickly", "in order", "on the device", "before the step", "after warmup", ""]


def generate(num_sentences, seed):
    rng = random.Random(seed)
    return [
        " ".join(w for w in (rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(OBJECTS),
                             rng.choice(TAILS)) if w) + "."
        for _ in range(num_sentences)
    ]
