"""User-facing errors.

Every problem caused by the user's input (a file, a field, a shape) raises a subclass of
`LeadJaxError` whose message names the file or field and what was expected. The command line
prints that message and exits with status 2 instead of showing a traceback.
"""


class LeadJaxError(Exception):
  """Base class of the errors a user can act on."""


class InputError(LeadJaxError, ValueError):
  """Bad input data: wrong shape, NaN frames, unknown joint names, malformed files."""


class MissingFileError(LeadJaxError, FileNotFoundError):
  """A file or directory the user must supply is missing."""


class WeightsError(LeadJaxError, ValueError):
  """A weight file is missing, incomplete, of another architecture or of mismatched shapes."""


class ConfigError(LeadJaxError, ValueError):
  """A configuration value is invalid."""
