"""Policies: the embedded tiny model and any HF causal LM, behind one protocol."""
