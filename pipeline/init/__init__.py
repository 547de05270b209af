"""`python -m pipeline init`: a readable config and a curated schema from a folder of CSV files."""
