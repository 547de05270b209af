"""What `init` refuses, each with one line that names the file, column or value at fault."""

from __future__ import annotations

from components.errors import UserError


class InitError(UserError):
    """`init` cannot write a config for this data or these arguments."""


class DataFolderError(InitError):
    """The data folder is missing, is not a folder, or holds no CSV rows."""


class CsvFileError(InitError):
    """A CSV file cannot be read: permission, encoding, or no header."""


class HeaderMismatchError(InitError):
    """Two CSV files of the folder have different headers."""


class LabelError(InitError):
    """The label column is missing, empty, or not a classification label."""


class NoFeaturesError(InitError):
    """Every column besides the label is ignored: there is nothing to learn from."""


class OutputExistsError(InitError):
    """The config or the schema file exists and `--force` was not given."""


class PipelineNameError(InitError):
    """`--name` is not usable as a pipeline and model name."""
