"""Prior-art generators that make frames directly from a caption (no Spliter, no embeddings)."""
