"""The plugin base classes, one import away (the same objects as ``sercli.contract.*``).

Each family's contract lives in its own module: ``sercli.contract.common`` (``Plugin``,
``Options``, the error and threading contract), ``text`` (``LLMBackend``), ``synthesis``
(``TTSEngine``), ``features`` (``Backbone``), ``learning`` (``Strategy``, ``Head``,
``TrainerAPI``), ``corpus`` (``Corpus``), ``gate`` (``Gate``), ``tracker`` (``Tracker``),
``cluster`` (``Cluster``, ``ShardWorker``), ``vad`` (``VAD``) and ``export`` (``RunExporter``,
``DeployableRun``). Import them from here or from ``sercli.api``.
"""

from sercli.contract.cluster import Cluster, ShardWorker
from sercli.contract.common import Options, Plugin, parse_option_pairs, validate_options
from sercli.contract.corpus import Corpus
from sercli.contract.export import DeployableRun, RunExporter
from sercli.contract.features import Backbone
from sercli.contract.gate import Gate
from sercli.contract.learning import Head, Strategy, TrainerAPI
from sercli.contract.synthesis import TTSEngine
from sercli.contract.text import LLMBackend
from sercli.contract.tracker import Tracker
from sercli.contract.vad import VAD

__all__ = [
    "Backbone", "Cluster", "Corpus", "DeployableRun", "Gate", "Head", "LLMBackend", "Options", "Plugin", "ShardWorker",
    "RunExporter", "Strategy", "TTSEngine", "Tracker", "TrainerAPI", "VAD", "parse_option_pairs", "validate_options",
]
