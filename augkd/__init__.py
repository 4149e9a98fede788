"""augkd: AuG-KD out-of-domain knowledge distillation and its distributed hyperparameter search."""

__version__ = "0.1.0"
