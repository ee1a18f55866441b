"""Training jobs: built-in trainers and user scripts on Synthex dataset versions."""
