"""The errors mltrace raises to its caller (never into a served request), drawn as one tree.

Every error mltrace raises on purpose is an :class:`MLTraceError`; each one that used to be a
builtin (``ValueError``, ``LookupError``) still is, so ``except ValueError`` in users' code keeps
catching it. The whole hierarchy, with the module each class is defined in (a test checks this
drawing against the classes that exist)::

    MLTraceError
    ├── ConfigurationError(ValueError)    mltrace._errors                 a configure() argument or MLTRACE_* variable
    ├── InvalidArgumentError(ValueError)  mltrace._errors                 a public function's argument is out of range
    ├── InputDataError(ValueError)        mltrace._errors                 unusable data handed in (array, frame, file)
    │   ├── ProfileMismatchError          mltrace._errors                 data does not match the reference profile
    │   └── ProfileFormatError            mltrace._errors                 a saved reference profile cannot be read
    ├── UnknownStage(LookupError)         mltrace._errors                 --stage names no stage in these traces
    ├── BatchSizeError(ValueError)        mltrace.batching._batch_spans   a batch function returned too few/many outputs
    ├── CommandError                      mltrace.cli._common             a CLI command's input cannot be used
    ├── ParameterError(ValueError)        mltrace.ui._params              a query parameter of ``mltrace ui`` (HTTP 400)
    └── QueryError                        mltrace.query._errors           what a trace source raises
        ├── SourceUnavailable             mltrace.query._errors           the backend cannot be reached
        ├── TraceNotFound(LookupError)    mltrace.query._errors           no trace with this id is stored
        └── UnknownService(LookupError)   mltrace.query._errors           the source has never seen this service

The drift and analysis errors live here and are re-exported by ``mltrace.drift`` and
``mltrace.analysis`` (their old private modules re-export them too). The query, batching, cli and
ui errors stay beside the code that raises them; they are drawn here so there is one story.
"""

from __future__ import annotations


class MLTraceError(Exception):
    """Base class of every error mltrace raises on purpose."""


class ConfigurationError(MLTraceError, ValueError):
    """A setting passed to :func:`mltrace.configure` (or read from the environment) is invalid."""


class InvalidArgumentError(MLTraceError, ValueError):
    """A value passed to a public function is out of its range or not one of the allowed values
    (a window of 0, an unknown metric, a malformed trace id)."""


class InputDataError(MLTraceError, ValueError):
    """Data handed to mltrace (an array, a data frame, a file) does not have the shape, columns or
    content asked for."""


class ProfileMismatchError(InputDataError):
    """Incoming data does not match the reference profile (names the features or shapes)."""


class ProfileFormatError(InputDataError):
    """A saved reference profile cannot be read (wrong format, version, or edited content)."""


class UnknownStage(MLTraceError, LookupError):
    """``--stage`` names a stage none of the traces has."""

    def __init__(self, stage: str, known: list[str]) -> None:
        self.stage = stage
        self.known = known
        super().__init__(f"no {stage!r} stage in these traces (stages seen: {', '.join(known) or 'none'})")
