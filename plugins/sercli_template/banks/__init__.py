"""Phrase banks of the ``template`` backend: ``common.json`` plus one ``<emotion>.json`` each."""
