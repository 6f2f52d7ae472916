"""The GitHub Action's step: inputs from ``INPUT_*``, repository metadata, signing, outputs."""
