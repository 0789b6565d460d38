"""A third-party sercli plugin: one class for each plugin family, plus a subcommand.

Install it next to sercli (`pip install ./examples/sercli-example-plugin`) and it appears in
`sercli plugins`. It is written against sercli's public contract alone (`sercli.hookspecs`,
`sercli.base` and `sercli.api`), and imports its classes inside the hooks, so that loading it
costs nothing until one of them is used:

- backbone `energy`: frame log-energy and zero-crossing rate (`sercli extract --backbone energy`)
- LLM backend `example`: sentences from a small phrase list (`sercli gen-text --backend example`)
- TTS engine `example`: a pure-numpy vowel synthesiser (`sercli synthesize --engine example`)
- strategy `balance`: synthetic utterances fill up the rarer classes (`sercli train --strategy balance`)
- head `last-layer`: logistic regression on the last layer (`sercli train --head last-layer`)
- corpus `folders`: `<emotion>/<speaker>_*.wav` (`sercli prepare folders PATH`)
- quality gate `duration`: drops utterances out of bounds (`sercli filter -g duration`)
- tracker `jsonl-log`: a run's scalars as JSON lines (`sercli track RUN --tracker jsonl-log`)
- cluster `threads`: sharded work on a thread pool (`sercli extract --cluster threads://2`)
- run exporter `pt2`: a run as torch.export programs (`sercli export pt2 RUN -o DIR`)
- voice-activity detector `peaks`: peak amplitude per frame (`sercli predict RUN LONG.wav --segments --vad peaks`)
- command `example-stats MANIFEST`: counts per emotion, source and speaker
"""

from sercli.hookspecs import hookimpl


@hookimpl
def register_backbones(register):
    from sercli_example.energy import Energy

    register(Energy)


@hookimpl
def register_llm_backends(register):
    from sercli_example.llm import PhraseList

    register(PhraseList)


@hookimpl
def register_tts_engines(register):
    from sercli_example.tts import Vowels

    register(Vowels)


@hookimpl
def register_strategies(register):
    from sercli_example.strategy import Balance

    register(Balance)


@hookimpl
def register_heads(register):
    from sercli_example.head import LastLayer

    register(LastLayer)


@hookimpl
def register_corpora(register):
    from sercli_example.corpus import Folders

    register(Folders)


@hookimpl
def register_commands(register):
    from sercli_example.stats import example_stats

    register(example_stats, name="example-stats")


@hookimpl
def register_gates(register):
    from sercli_example.gate import Duration

    register(Duration)


@hookimpl
def register_trackers(register):
    from sercli_example.tracker import JsonlLog

    register(JsonlLog)


@hookimpl
def register_clusters(register):
    from sercli_example.threads import Threads

    register(Threads)


@hookimpl
def register_run_exporters(register):
    from sercli_example.exporter import Pt2

    register(Pt2)


@hookimpl
def register_vads(register):
    from sercli_example.peaks import Peaks

    register(Peaks)
