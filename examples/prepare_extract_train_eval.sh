#!/usr/bin/env bash
# A real corpus through the whole chain: prepare -> extract -> train -> eval.
#
#   examples/prepare_extract_train_eval.sh [CORPUS] [PATH] [TEST_SPEAKERS] [WORKDIR]
#
# Defaults: the EmoDB copy in ../shared/data, speakers 03 (male) and 08 (female) held out for
# testing, files under work/emodb/. For IEMOCAP's usual protocol (Session 5 as test):
#   examples/prepare_extract_train_eval.sh iemocap /data/IEMOCAP_full_release Ses05_F,Ses05_M
# Uses the offline filterbank backbone, so it runs anywhere; pick another with `sercli plugins`.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
corpus=${1:-emodb}
corpus_path=${2:-$here/../../shared/data/emodb/audio}
test_speakers=${3:-03,08}
work=${4:-work/$corpus}
mkdir -p "$work"

sercli prepare "$corpus" "$corpus_path" -o "$work/manifest.jsonl"
sercli extract "$work/manifest.jsonl" --backbone fbank --store "$work/features" -o "$work/feats.jsonl"
sercli train "$work/feats.jsonl" --test-speakers "$test_speakers" --out "$work/run" --overwrite
sercli eval "$work/run"
