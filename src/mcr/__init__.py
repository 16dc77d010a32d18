"""mcr: the Multimodal Competition Regularizer and the baselines it is compared against.

Layers, each importing only the ones before it:
``data`` -> ``models`` -> ``methods`` -> ``training`` -> ``evaluation`` -> ``cli``.
"""

__version__ = "0.1.0"
