"""The user's project as a typed model: mlship.yaml, schema.json, the test data, templates."""
