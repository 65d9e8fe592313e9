"""The runtime entry points: the ``lakehouse`` command and the functions Airflow tasks call."""
