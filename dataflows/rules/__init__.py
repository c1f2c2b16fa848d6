"""Configuration compiled for evaluation: the version in force (`live_config`), event matching,
segment and stage conditions, and the scoring rules' index."""
