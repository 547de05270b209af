"""ExampleGen for CSV: CsvExampleGen's examples and splits, read a batch of rows at a time."""
