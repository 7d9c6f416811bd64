"""One module per stage of dvc.yaml's main job, run as
`python -m pipeline.stages.<stage>`, and the two generic stages every experiment runs
through (`experiment`, `experiment_report`).

A stage reads its section of params.yaml (pipeline.core.params) and the paths dvc.yaml
gives it on its command line (pipeline.core.cli), and writes only its declared
outputs. No stage imports another: what stages share lives in pipeline.core.
"""
