"""One folder per experiment: `params.py` (its typed params.yaml section), `run.py`
(the experiment) and `analysis.py` (the numbers and verdicts its report shows).
params.yaml's `experiments.names` lists the ones dvc.yaml runs."""
