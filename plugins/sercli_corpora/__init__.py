"""Built-in corpus readers: `sercli prepare CORPUS PATH` turns a corpus into a manifest."""

from sercli.hookspecs import hookimpl


@hookimpl
def register_corpora(register):
    from sercli_corpora.crema_d import CremaD
    from sercli_corpora.emobox import EmoBox
    from sercli_corpora.emodb import EmoDB
    from sercli_corpora.generic import Generic
    from sercli_corpora.hf_datasets import HFDatasets
    from sercli_corpora.iemocap import Iemocap
    from sercli_corpora.msp_podcast import MspPodcast
    from sercli_corpora.ravdess import Ravdess
    from sercli_corpora.tess import Tess

    for cls in (Iemocap, MspPodcast, Ravdess, CremaD, EmoDB, Tess, Generic, EmoBox, HFDatasets):
        register(cls)
