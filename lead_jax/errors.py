"""User-facing errors.

Every problem caused by the user's input (a file, a field, a shape) raises a subclass of
`LeadJaxError` whose message names the file or field and what was expected. The command line
prints that message and exits with status 2 instead of showing a traceback. `LeadJaxWarning`s
are printed as one line `lead-jax COMMAND: warning: ...`.
"""

import errno


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


class OutputError(LeadJaxError, OSError):
  """An output cannot be written: a read-only folder, a full disk, a path that is a file."""


class LeadJaxWarning(UserWarning):
  """Something the user should know that does not stop the run (the CLI prints it on one line)."""


def output_error(error: OSError, what: str) -> OutputError:
  """`OutputError` for an `OSError` raised while writing `what` (a path or a description): names
  the path, the reason ('no space left on device', 'read-only file system', ...) and the fix."""
  reason = error.strerror or str(error) or type(error).__name__
  where = f" ({error.filename})" if getattr(error, "filename", None) else ""
  hint = {errno.ENOSPC: "the disk is full: free space and run again",
          errno.EDQUOT: "the disk quota is exceeded: free space and run again",
          errno.EROFS: "the file system is read-only: choose a writable folder",
          errno.EACCES: "no permission to write there: choose a writable folder",
          errno.EPERM: "no permission to write there: choose a writable folder",
          errno.ENOTDIR: "a path component is a file, not a folder",
          errno.EEXIST: "a file is in the way"}.get(error.errno, "")
  return OutputError(f"cannot write {what}: {reason}{where}" + (f"; {hint}" if hint else ""))
