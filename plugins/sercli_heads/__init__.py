"""The built-in downstream heads (``sercli train --head NAME -O KEY=VALUE``).

- ``mlp``: learnt layer weights, a two-layer projection per frame, mean (or mean+std) pooling.
- ``linear``: logistic regression on the z-scored features, layers weighted or concatenated.
- ``attentive``: frame features, attentive statistics pooling (Okabe et al., 2018).
- ``cnn``: frame features, 1-D convolutions and self-attention pooling (s3prl's emotion model).
"""

from sercli.hookspecs import hookimpl


@hookimpl
def register_heads(register):
    from sercli_heads.heads import Attentive, Cnn, Linear, Mlp

    for cls in (Mlp, Linear, Attentive, Cnn):
        register(cls)
