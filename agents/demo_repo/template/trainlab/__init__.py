"""trainlab: the team's training workflows (recommender, language model, vision)."""
