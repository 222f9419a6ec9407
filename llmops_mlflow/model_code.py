"""The champion model as code: MLflow runs this file to get the pyfunc (see registry.py).

A model object holding a Chroma client cannot be pickled, so the model is logged from code and
builds its chain in `load_context` from the config, prompt and index snapshot it carries.
"""

import mlflow

from llmops_mlflow.serving import RagModel

mlflow.models.set_model(RagModel())
