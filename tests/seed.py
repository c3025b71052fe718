"""The seed's SeldonDeployment (the manager's write-up), verbatim: what labdeck must deploy unchanged."""

SEED_SELDON_DEPLOYMENT = """\
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata:
  name: iris-model
  namespace: prod-data-science
spec:
  name: iris
  predictors:
  - graph:
      implementation: SKLEARN_SERVER
      modelUri: gs://seldon-models/v1.16.0-dev/sklearn/iris
      name: classifier
    name: default
    replicas: 1
"""
SEED_MODEL_URI = "gs://seldon-models/v1.16.0-dev/sklearn/iris"
