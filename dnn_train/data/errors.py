"""DataError: what every data module raises for data that is missing or malformed."""
from dnn_train.config import ConfigError


class DataError(ConfigError):
    """Data missing or malformed: reported as one line, exit code 2."""
