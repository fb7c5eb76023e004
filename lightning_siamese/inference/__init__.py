"""Everything a tool needs to use a trained model: checkpoints, images, thresholds, galleries, run folders."""
