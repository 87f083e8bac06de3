"""The domain core: pure functions and small classes on DataFrames. No Dagster, SQL or MLflow here."""
