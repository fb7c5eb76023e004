"""Where images come from: load a labelled image collection into memory once (one module per format)."""
