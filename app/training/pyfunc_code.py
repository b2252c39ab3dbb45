"""The registered model's code, in MLflow's models-from-code form: MLflow runs this file when it
logs and loads the model (the project never imports it), so no pickled object is stored."""

from mlflow.models import set_model

from app.training.pyfunc import CreditRiskPyfunc

set_model(CreditRiskPyfunc())
