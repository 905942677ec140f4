"""The Hugging Face leaf: loading, encoding, training, features, serialization, decoding, losses.

The only layer that imports torch, transformers and peft (lazily); may import the layers below it.
"""
