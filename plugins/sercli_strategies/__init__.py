"""Strategies for learning from real plus synthetic emotional speech (Ma et al., 2023),
and the classic augmentations they are compared with."""

from sercli.hookspecs import hookimpl


@hookimpl
def register_strategies(register):
    from sercli_strategies.adversarial import Adversarial
    from sercli_strategies.augment import Mixup, Noise, SpecAugment, Speed
    from sercli_strategies.basic import Mix, RealOnly
    from sercli_strategies.curriculum import Curriculum
    from sercli_strategies.transfer import Transfer

    for cls in (RealOnly, Mix, Adversarial, Transfer, Curriculum, Noise, SpecAugment, Mixup, Speed):
        register(cls)
