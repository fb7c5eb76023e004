"""LightningDataModules: a source, a split by class, a sampler and transforms, joined."""
