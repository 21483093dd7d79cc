"""Data: the embedding store, video I/O, dataset readers and the synthetic and procedural datasets."""
