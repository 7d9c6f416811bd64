"""One module per dvc.yaml stage, each run as `python -m pipeline.stages.<stage>`.

A stage reads its section of params.yaml (pipeline.params) and the paths dvc.yaml
gives it on its command line (pipeline.cli), and writes only its declared outputs.
No stage imports another: what two stages share lives in the modules of `pipeline`.
"""
