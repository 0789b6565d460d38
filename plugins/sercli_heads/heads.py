"""The head plugins: options, what ``--search`` may try, and the module each builds
(``sercli_heads.modules``, imported only when a head is built: it needs torch)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from sercli.api import Head, Options

if TYPE_CHECKING:
    from sercli.api import HeadModule

Pool = Literal["mean", "mean+std"]
DROPOUT = (0.0, 0.5, "linear")


class Mlp(Head):
    """sercli's first head: a learnt softmax weight per layer (SUPERB's featurizer), per-layer
    z-scores, a two-layer ReLU projection per frame, mean or mean+std pooling over frames and a
    linear classifier. On utterance features it is an MLP; ``hidden=0`` drops the projection."""

    name = "mlp"
    description = "Weighted layers, a 2-layer projection per frame, mean(+std) pooling, a linear classifier."

    class Options(Options):
        hidden: int = Field(256, ge=0, description="Projection size (0: none, a linear classifier).")
        dropout: float = Field(0.2, ge=0.0, le=0.9, description="Dropout before each linear layer.")
        pool: Pool = Field("mean", description="Pooling over frames: mean or mean+std.")

    def build(self, num_layers: int, dim: int, num_classes: int) -> HeadModule:
        from sercli_heads.modules import MlpModule

        o = self.options
        return MlpModule(num_layers, dim, num_classes, o.hidden, o.dropout, o.pool)

    def search_space(self) -> dict[str, list | tuple]:
        return {"hidden": [0, 64, 128, 256, 512], "dropout": DROPOUT, "pool": ["mean", "mean+std"]}


class Linear(Head):
    """Logistic regression as a head: z-scored features, the layers concatenated (``layers=concat``)
    or summed with learnt weights (``weighted``), pooled over frames, straight into one linear
    layer trained with cross-entropy (the trainer's ``--weight-decay`` is its L2 penalty). With
    ``concat`` on utterance features it is the neural twin of scikit-learn's StandardScaler +
    LogisticRegression on every layer, the baseline that beat the ``mlp`` head on EmoDB."""

    name = "linear"
    description = "Logistic regression on the z-scored layers (concatenated or weighted), pooled over frames."

    class Options(Options):
        layers: Literal["concat", "weighted"] = Field(
            "concat", description="concat: every layer side by side; weighted: a learnt weighted sum.")
        pool: Pool = Field("mean", description="Pooling over frames: mean or mean+std.")
        dropout: float = Field(0.0, ge=0.0, le=0.9, description="Dropout on the pooled features.")

    def build(self, num_layers: int, dim: int, num_classes: int) -> HeadModule:
        from sercli_heads.modules import LinearModule

        o = self.options
        return LinearModule(num_layers, dim, num_classes, o.layers, o.pool, o.dropout)

    def search_space(self) -> dict[str, list | tuple]:
        return {"layers": ["concat", "weighted"], "pool": ["mean", "mean+std"], "dropout": DROPOUT}


class Attentive(Head):
    """Attentive statistics pooling (Okabe et al., Interspeech 2018; the pooling of SpeechBrain's
    ECAPA-TDNN and s3prl's speaker heads): learnt layer weights, a ReLU projection per frame, a
    small attention network that scores every frame, the attention-weighted mean and standard
    deviation of the frames, and a linear classifier. Emotion sits in a few frames (a stressed
    syllable, a laugh) that mean pooling dilutes; the weights let the head pick them."""

    name = "attentive"
    description = "Frame features (--pool none): weighted layers, a projection, attentive statistics pooling."
    frame_level = True

    class Options(Options):
        hidden: int = Field(128, ge=1, description="Projection size per frame.")
        attention: int = Field(64, ge=1, description="Hidden size of the attention network.")
        dropout: float = Field(0.2, ge=0.0, le=0.9, description="Dropout before the projection and the classifier.")

    def build(self, num_layers: int, dim: int, num_classes: int) -> HeadModule:
        from sercli_heads.modules import AttentiveModule

        o = self.options
        return AttentiveModule(num_layers, dim, num_classes, o.hidden, o.attention, o.dropout)

    def search_space(self) -> dict[str, list | tuple]:
        return {"hidden": [64, 128, 256], "attention": [32, 64, 128], "dropout": DROPOUT}


class Cnn(Head):
    """s3prl's emotion downstream (``DeepModel``, ``CNNSelfAttention``, the model of its SUPERB ER
    recipe): learnt layer weights, a linear projector, average pooling over ``downsample`` frames,
    three 1-D convolutions over time, self-attention pooling and a two-layer classifier. The
    convolutions see a few frames at once (s3prl: kernel 5 after 5x pooling, about half a second
    at 50 frames/s), where local prosody and voice quality changes are."""

    name = "cnn"
    description = "Frame features (--pool none): 1-D convolutions over frames and self-attention pooling (s3prl ER)."
    frame_level = True

    class Options(Options):
        projector: int = Field(256, ge=1, description="Linear projection of the weighted layers.")
        hidden: int = Field(80, ge=1, description="Channels of the convolutions.")
        kernel: int = Field(5, ge=1, description="Convolution width in (downsampled) frames; odd.")
        downsample: int = Field(5, ge=1, description="Average pooling over this many frames first.")
        dropout: float = Field(0.4, ge=0.0, le=0.9, description="Dropout before each convolution.")

        @field_validator("kernel")
        @classmethod
        def _odd(cls, kernel: int) -> int:
            if kernel % 2 == 0:
                raise ValueError("expected an odd width (3, 5, 7...), so that frames stay centred")
            return kernel

    def build(self, num_layers: int, dim: int, num_classes: int) -> HeadModule:
        from sercli_heads.modules import CnnModule

        o = self.options
        return CnnModule(num_layers, dim, num_classes, o.projector, o.hidden, o.kernel, o.downsample, o.dropout)

    def search_space(self) -> dict[str, list | tuple]:
        return {"hidden": [40, 80, 160], "kernel": [3, 5], "downsample": [1, 2, 5], "dropout": DROPOUT}
