"""Which images go together: pairs, triplets, P x K class batches and N-way K-shot episodes, from labels alone."""
