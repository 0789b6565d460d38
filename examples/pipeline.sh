#!/usr/bin/env bash
# The whole sercli chain on the offline default plugins:
#   gen-text (template LLM) -> synthesize (espeak-ng voices) -> extract -> train -> eval
# Speaker independent: training voices and test voices are disjoint, and so are the sentences.
#
# With a real corpus, pass its manifest instead of making synthetic speech:
#   MANIFEST=emodb.jsonl TEST_SPEAKERS=03,08 bash examples/pipeline.sh
set -euo pipefail

WORK=${WORK:-work/pipeline}
BACKBONE=${BACKBONE:-whisper-tiny.en}   # the offline pretrained encoder (see README)
N=${N:-80}                                   # sentences per emotion
EMOTIONS=${EMOTIONS:-angry,happy,neutral,sad}
TRAIN_VOICES=${TRAIN_VOICES:-en-us,en-us+f2,en-gb-x-rp,en-gb-x-rp+f1,en+m7,en-029+f3}
TEST_VOICES=${TEST_VOICES:-en-gb-scotland+m2,en-us-nyc+f4}
SEEDS=${SEEDS:-0,1,2,3,4}                    # one head per seed: a single seed's score varies by ~0.05
mkdir -p "$WORK"

if [ -n "${MANIFEST:-}" ]; then
  : "${TEST_SPEAKERS:?set TEST_SPEAKERS to the held-out speakers of $MANIFEST}"
  cp "$MANIFEST" "$WORK/speech.jsonl"
else
  sercli gen-text --emotions "$EMOTIONS" --n "$N" --seed 0 -o "$WORK/texts.jsonl"
  # every 4th sentence is kept for the test voices only
  awk 'NR % 4 != 0' "$WORK/texts.jsonl" > "$WORK/texts_train.jsonl"
  awk 'NR % 4 == 0' "$WORK/texts.jsonl" > "$WORK/texts_test.jsonl"
  sercli synthesize "$WORK/texts_train.jsonl" --engine espeak --voices "$TRAIN_VOICES" \
    --voices-per-text 3 --audio-dir "$WORK/audio" -o "$WORK/speech_train.jsonl"
  sercli synthesize "$WORK/texts_test.jsonl" --engine espeak --voices "$TEST_VOICES" \
    --voices-per-text 2 --audio-dir "$WORK/audio" -o "$WORK/speech_test.jsonl"
  cat "$WORK/speech_train.jsonl" "$WORK/speech_test.jsonl" > "$WORK/speech.jsonl"
  TEST_SPEAKERS=$(echo "$TEST_VOICES" | sed 's/[^,]*/espeak:&/g')
fi

sercli extract "$WORK/speech.jsonl" --backbone "$BACKBONE" --store "$WORK/features" \
  -o "$WORK/features.jsonl"
sercli train "$WORK/features.jsonl" --test-speakers "$TEST_SPEAKERS" --seeds "$SEEDS" --out "$WORK/run" --overwrite
sercli eval "$WORK/run" > "$WORK/metrics.json"
python3 -c "
import json, sys
m = json.load(open(sys.argv[1]))
ua, wa = m['UA'], m['WA']
print(f\"UA {ua['mean']:.4f} +- {ua['std']:.4f}  WA {wa['mean']:.4f} +- {wa['std']:.4f}  \"
      f\"(mean +- std over {ua['n']} seeds; n={m['pooled']['n'] // ua['n']} utterances of held-out speakers: {sys.argv[2]})\")
" "$WORK/metrics.json" "$TEST_SPEAKERS"
