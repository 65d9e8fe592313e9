"""The sentiment model's lifecycle: training and evaluation (scikit-learn), the MLflow registry and its promotion
gate, and serving. Free of Spark: the Spark jobs (``lakehouse.spark``) build the training set and score the stream
with what this layer provides."""
