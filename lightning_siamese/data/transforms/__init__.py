"""Image transforms: training augmentation and evaluation-time views."""
