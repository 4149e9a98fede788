"""What a search leaves: MLflow runs and tags, the results table, logged models, and the copy
of the records kept beside the storage."""
