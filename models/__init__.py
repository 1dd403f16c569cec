"""Declarative PyTorch networks: a spec in, an ``nn.Module`` and its training loop out."""
